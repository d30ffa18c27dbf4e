"""Which device a unit of work runs on.

``auto`` (the default everywhere): the ``SEMLIB_DEVICE`` environment variable if it is set,
otherwise the first CUDA GPU torch can see, otherwise the CPU. A Ray task that was given a GPU
sees exactly that one (Ray sets ``CUDA_VISIBLE_DEVICES``); a task given none sees no GPU and
runs on the CPU, so the same code serves a laptop, a multi-GPU node and a cluster.

Seeds do not depend on the device, but random numbers do: a CUDA generator seeded like a CPU
one draws different numbers, and GPU kernels round differently. Results are reproducible on
the same kind of device; a CPU run and a GPU run are two equally valid samples, not copies.
"""
from __future__ import annotations

import os

import torch

ENV = "SEMLIB_DEVICE"


def resolve(device: str | torch.device | None = None) -> torch.device:
    """The device ``device`` names (``auto``, ``cpu``, ``cuda``, ``cuda:N``); None means auto."""
    source = "device"
    if device is None or device == "auto":
        device, source = os.environ.get(ENV) or "auto", ENV
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{source}: unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{source}: device {device!r} is not supported; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{source}: {device!r} asked for, but torch {torch.__version__} sees no CUDA GPU; "
                             f"use auto or cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{source}: {device!r} asked for, but only {torch.cuda.device_count()} GPU(s) are visible")
    return dev


def request(device: str | torch.device | None = None) -> str:
    """The name another process (a Ray worker) resolves for itself: the one given, else this
    process's ``SEMLIB_DEVICE``, else ``auto`` (so each worker takes the GPU it was given)."""
    return str(device) if device not in (None, "auto") else os.environ.get(ENV) or "auto"


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)


def describe(device: torch.device) -> str:
    """``cpu`` or the GPU's name, for cards and manifests."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
