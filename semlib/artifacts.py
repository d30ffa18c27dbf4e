"""Files: atomic writes, safe checkpoints (safetensors + a JSON card), provenance.

A checkpoint is two files side by side: ``<name>.safetensors`` (weights, fp16 for floating
tensors) and ``<name>.json`` (the card: what the model is, how it was trained, its measured
accuracy, and the sha256 of the weights file). The card is written last, so a card's presence
means the checkpoint is complete; a weights file whose hash differs from its card is refused.
Nothing here unpickles: weights load through safetensors only.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import semlib
from semlib import device as devices, layout


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, foreign or tampered with."""


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``);
    elsewhere set and restored at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace`` (never half-written).

    The file gets the mode a plain ``open`` would give it (``0o666 & ~umask``, e.g. 0644),
    not ``mkstemp``'s 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (Path,)):
        return str(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def card_path(weights: str | os.PathLike) -> Path:
    return Path(weights).with_suffix(".json")


STORED_DTYPE = torch.float16  # checkpoints hold half-precision floats


@torch.no_grad()
def as_stored(model: torch.nn.Module, dtype: torch.dtype = STORED_DTYPE) -> torch.nn.Module:
    """Round ``model``'s floating weights and buffers, in place, to what :func:`save_checkpoint`
    keeps, so numbers measured next (a card's accuracies) describe the shipped weights."""
    for t in [*model.parameters(), *model.buffers()]:
        if t.is_floating_point():
            t.copy_(t.to(dtype).to(t.dtype))
    return model


def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike, card: dict[str, Any],
                    dtype: torch.dtype = STORED_DTYPE) -> dict[str, Any]:
    """Save ``model``'s state dict as safetensors (floats cast to ``dtype``) plus its JSON card.

    Returns the card as written (with ``sha256`` and ``semlib_version`` added).
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoint path must end in .safetensors, got {path}")
    state = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous().cpu()
             for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp made it 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    card = {**card, "sha256": sha256_file(path), "semlib_version": semlib.__version__}
    write_json(card_path(path), card)
    return card


def read_card(path: str | os.PathLike) -> dict[str, Any] | None:
    """The card of a checkpoint, or None when the checkpoint is absent or incomplete."""
    cp = card_path(path)
    if not cp.is_file() or not Path(path).is_file():
        return None
    try:
        card = json.loads(cp.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"card {cp} is not valid JSON ({e}); delete it and the weights to retrain") from None
    if not (isinstance(card, dict) and isinstance(card.get("sha256"), str)):
        raise CheckpointError(f"card {cp} is not a checkpoint card (a JSON object with a 'sha256' string); "
                              f"delete it and the weights to retrain")
    return card


BEHAVIOUR_FIELDS = ("submodel", "recipe")  # what of a card, besides the weights, shapes the model


def card_fingerprint(card: dict[str, Any]) -> str:
    """A hash of everything in ``card`` that shapes the model's behaviour: the weights' sha256 and
    the architecture, size, sigma and noise space (``submodel``) or a baseline's ``recipe``. A
    curve's cache key holds it, so editing a card's sigma changes the key."""
    shaped = {"sha256": card["sha256"], **{k: card[k] for k in BEHAVIOUR_FIELDS if k in card}}
    return hashlib.sha256(json.dumps(shaped, sort_keys=True, default=str).encode()).hexdigest()


def load_state(path: str | os.PathLike, verify: bool = True) -> dict[str, torch.Tensor]:
    """Load a checkpoint's tensors through safetensors (no pickle), checking the card's hash."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train it (make zoo) or fix the path")
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path} is not a .safetensors file; semlib loads only safetensors checkpoints "
                              f"(pickled .pt/.pth files can run code when loaded)")
    if verify:
        card = read_card(path)
        if card is None:
            raise CheckpointError(f"checkpoint {path} has no card {card_path(path).name}; it is incomplete — retrain it")
        digest = sha256_file(path)
        if card.get("sha256") != digest:
            raise CheckpointError(f"checkpoint {path} has sha256 {digest[:12]}…, its card says "
                                  f"{str(card.get('sha256'))[:12]}…: the file was changed or corrupted; retrain it")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}; it is corrupt or not a safetensors file") from None


def load_weights(model: torch.nn.Module, path: str | os.PathLike, verify: bool = True) -> torch.nn.Module:
    """Load a checkpoint into ``model`` (cast to the model's dtype); a foreign checkpoint is refused."""
    state = load_state(path, verify)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"checkpoint {path} does not fit {type(model).__name__} "
            f"{getattr(model, 'arch', '')}: {len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(shapes)} mis-shaped tensors (e.g. {(missing + unexpected + shapes)[:3]}); "
            f"check the architecture, width, depth and stem_stride in its card")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model


def git_sha(cwd: str | os.PathLike | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        sha = out.stdout.strip()
        if out.returncode != 0 or not sha:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    from importlib import metadata

    names = ["torch", "numpy", "scipy", "pandas", "matplotlib", "seaborn", "safetensors", "papermill"]
    out = {"python": platform.python_version(), "semlib": semlib.__version__}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out


SCORE_ENV = "SEMLIB_MACHINE_SCORE"  # the machine score a pipeline run measured (semlib.plan)


def recorded_score() -> float | None:
    """The machine score of the pipeline run this process belongs to (``SEMLIB_MACHINE_SCORE``),
    or None outside a pipeline run."""
    try:
        value = float(os.environ.get(SCORE_ENV, ""))
    except ValueError:
        return None
    return round(value, 1) if math.isfinite(value) and value > 0 else None


def provenance(params: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """What produced a result: git SHA, package versions, params, host, time."""
    return {
        "git_sha": git_sha(),
        "packages": package_versions(),
        "params": params or {},
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                 "device": devices.describe(devices.resolve()), "cpu_capability": layout.cpu_capability(),
                 "machine_score": recorded_score()},
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
