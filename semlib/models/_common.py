"""Pieces shared by every model family: the normalization layer and the width/depth knobs.

Every model in the zoo maps pixels in [0, 1], shape ``[B, 3, 32, 32]``, to logits ``[B, C]``.
Per-channel normalization is the model's *first layer* (never a data transform), so attacks
and smoothing noise act in pixel space.
"""
from __future__ import annotations

import torch
from torch import nn

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; input pixels in [0, 1], shape ``[B, 3, H, W]``."""

    def __init__(self, mean: tuple[float, ...] = CIFAR10_MEAN, std: tuple[float, ...] = CIFAR10_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """A zoo model: ``Normalize`` followed by a family's body.

    Attributes
    ----------
    arch : str
        Registry name, e.g. ``"densenet121"``.
    family : str
        Family name used by the SEM sampler, e.g. ``"densenet"``.
    """

    def __init__(self, body: nn.Module, arch: str, family: str):
        super().__init__()
        self.normalize = Normalize()
        self.body = body
        self.arch = arch
        self.family = family

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))


def ch(channels: float, width: float, minimum: int = 4) -> int:
    """Scale a channel count by ``width``, keeping at least ``minimum`` channels."""
    return max(minimum, int(round(channels * width)))


def reps(blocks: int, depth: float) -> int:
    """Scale a count of repeated blocks by ``depth``, keeping at least one."""
    return max(1, int(round(blocks * depth)))


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def head(cin: int, num_classes: int) -> nn.Sequential:
    """Global average pooling then a linear layer."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))
