"""What the library accepts as images, labels and targets: one check each, one clear line when
something else is passed (the attacks, the Monte-Carlo judge and :mod:`semlib.smoothing` call
them at their entry points)."""
from __future__ import annotations

import torch

from .cifar10 import NUM_CLASSES


def check_images(x: torch.Tensor) -> None:
    """Refuse anything but a non-empty float32 batch ``[B, 3, H, W]`` of finite pixels in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"images must be a torch tensor [B, 3, H, W] of float32 pixels in [0, 1], "
                         f"got {type(x).__name__}; convert with torch.as_tensor(x, dtype=torch.float32)")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"images must have shape [B, 3, H, W], got {tuple(x.shape)}")
    if x.shape[0] == 0 or x.numel() == 0:
        raise ValueError(f"images: empty batch {tuple(x.shape)}; pass at least one image")
    if not x.is_floating_point():
        raise ValueError(f"images must be float pixels in [0, 1], got dtype {x.dtype}; divide uint8 by 255")
    if x.dtype != torch.float32:
        raise ValueError(f"images must be float32 pixels in [0, 1] (the models' dtype), got {x.dtype}; "
                         f"convert with x.float()")
    with torch.no_grad():
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise ValueError(f"images contain {bad} NaN or infinite pixel(s); pass finite pixels in [0, 1]")
        lo, hi = (float(v) for v in torch.aminmax(x))
    if lo < 0 or hi > 1:
        raise ValueError(f"image pixels must lie in [0, 1], got min {lo:.3g}, max {hi:.3g}; "
                         f"pass raw pixels (normalization is the model's first layer)")


def check_labels(y: torch.Tensor, n: int, name: str = "labels", num_classes: int = NUM_CLASSES,
                 device: torch.device | None = None, of: str = "the images") -> None:
    """Refuse labels (or targets) that are not int64 class indices ``[n]`` in ``0..num_classes-1``.

    Parameters
    ----------
    y : the labels to check
    n : how many there must be (one per image)
    name : what they are called in the error (``labels`` or ``targets``)
    num_classes : classes of the task (CIFAR-10: 10)
    device : where they must live (the images' device), if given
    of : what they must match in length, for the error
    """
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor of int64 class indices, got {type(y).__name__}; "
                         f"convert with torch.as_tensor({name}, dtype=torch.long)")
    if y.dim() != 1 or len(y) != n:
        raise ValueError(f"{name} must have shape [{n}] to match {of}, got {tuple(y.shape)}")
    if y.dtype != torch.long:
        raise ValueError(f"{name} must be int64 (torch.long) class indices, got dtype {y.dtype}; convert with .long()")
    if device is not None and y.device != torch.device(device):
        raise ValueError(f"{name} are on {y.device} but the images on {device}; move them with .to({str(device)!r})")
    if n:
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{name} must be class indices in 0..{num_classes - 1}, got min {lo}, max {hi}")
