"""How the CPU computes: channels_last wherever it is correct, bf16 autocast where it is native,
and the CPU capability every result records.

channels_last speeds convolutions up on CPUs (training x1.2-1.6 in fp32 on an AVX2-only EPYC,
about x2 with bf16 on AVX-512; ``benchmarks/bench_training.py``), but oneDNN's backward-weights
kernel for strided 1x1 convolutions on NHWC sources is broken (oneDNN issue 6035; measured in
``benchmarks/results/``): with AVX2 kernels and fewer than 8 input channels it writes past its
workspace -- a crash, a hang, or silently wrong weight gradients (oneDNN 3.12 in torch 2.13 and
3.10 in torch 2.11); with AVX-512 kernels (oneDNN 3.10) a ResNet shortcut on 8 channels gets
weight gradients off by 2%. Every strided 1x1 convolution on a CPU whose weight gradient can be
asked for therefore runs in NCHW (weight and input contiguous), which oneDNN computes correctly,
whatever the instruction set and the channel count; every other layer runs channels_last. A
frozen convolution (``weight.requires_grad`` False: every model loaded for evaluation,
:mod:`semlib.checkpoints`) never reaches the broken kernel, and oneDNN's forward and
input-gradient kernels are correct on NHWC sources (``tests/test_portability.py``), so it stays
channels_last (on the AVX2 kind its reorders cost a ResNet-50 attack pass up to x1.30, the
laptop's workloads x1.02-1.03: ``benchmarks/bench_eval_guard.py``). The guard does not depend on detecting which kernels
oneDNN picks.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

def cpu_capability() -> str:
    """ATen's CPU capability (``AVX512``, ``AVX2``, ``DEFAULT``, ...), for cards and metrics."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm2d that directly follows a Conv2d in an ``nn.Sequential``
    into that convolution (``w g / sqrt(v + e)``, bias ``(b - m) g / sqrt(v + e) + beta``) and
    replace it by Identity, in place: one layer less per pair, the same function up to rounding.
    For evaluation only (a model that trains again must keep its BatchNorm)."""
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and not (conv.training or bn.training):
                seq[i] = torch.nn.utils.fusion.fuse_conv_bn_eval(conv, bn)
                seq[i + 1] = nn.Identity()
    return model


def exposed(module: nn.Module) -> bool:
    """Whether ``module`` is a convolution oneDNN's bug can hit in channels_last: a 1x1 kernel
    with a stride above 1 (any channel count: the AVX-512 kernels fail at 8 channels too)."""
    return (isinstance(module, nn.Conv2d) and tuple(module.kernel_size) == (1, 1)
            and tuple(module.stride) != (1, 1))


def guarded(module: nn.Module) -> bool:
    """Whether :func:`channels_last` keeps ``module`` NCHW: an exposed convolution whose weight
    gradient can be asked for (the broken kernel computes weight gradients; a frozen weight
    never reaches it). Decided when the block is entered."""
    return exposed(module) and module.weight.requires_grad


def nchw(t: torch.Tensor) -> torch.Tensor:
    """``t`` with row-major (NCHW) strides. ``t.contiguous()`` is not enough: a tensor with
    size-1 dimensions (a 1x1 kernel) can be contiguous with channels_last strides, and oneDNN
    then takes the channels_last path."""
    strides, step = [], 1
    for size in reversed(t.shape):
        strides.append(step)
        step *= size
    return t if t.stride() == tuple(reversed(strides)) else t.clone(memory_format=torch.contiguous_format)


def _nchw_input(module: nn.Module, args: tuple) -> tuple:
    return (nchw(args[0]),) + tuple(args[1:])


@contextlib.contextmanager
def channels_last(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Run ``model`` channels_last inside the block, :func:`guarded` layers excepted (see the
    module docstring); the model is contiguous again afterwards. Feed inputs as channels_last too
    (``x.contiguous(memory_format=torch.channels_last)``). With ``enabled=False`` the model stays
    contiguous, but guarded layers are still kept NCHW: an input can arrive with channels_last
    strides without anyone asking for them (a permuted crop, for instance)."""
    if enabled:
        model.to(memory_format=torch.channels_last)
    handles = []
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    for m in model.modules():
        if on_cpu and guarded(m):
            m.weight.data = nchw(m.weight.data)
            handles.append(m.register_forward_pre_hook(_nchw_input))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()
        if enabled:
            model.to(memory_format=torch.contiguous_format)
            for p in model.parameters():  # 1x1 kernels keep channels_last strides through .to()
                p.data = nchw(p.data)


def bf16_available() -> bool:
    """Whether bf16 autocast pays here: a CPU with native bf16 (AVX-512 BF16 / AMX)."""
    try:
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(enabled: bool, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` when ``enabled`` (a no-op otherwise)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@contextlib.contextmanager
def channels_last_all(models, enabled: bool = True) -> Iterator[None]:
    """:func:`channels_last` for each distinct model of ``models`` (one block for all)."""
    with contextlib.ExitStack() as stack:
        for m in {id(m): m for m in models}.values():
            stack.enter_context(channels_last(m, enabled))
        yield
