"""The zoo's model families (paper Table 1), CIFAR-style for 32x32 inputs, in one registry.

Every model maps pixels in [0, 1], ``[B, 3, 32, 32]``, to logits ``[B, num_classes]``, and
starts with a :class:`Normalize` layer. Presets shrink models through three knobs that every
family understands:

``width``
    multiplies channel counts (1.0 = the published network);
``depth``
    multiplies the number of repeated blocks per stage (at least one is kept);
``stem_stride``
    1 (CIFAR default) or 2 (halves every feature map: about 4x cheaper on a CPU).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from torch import nn

from . import alexnet, densenet, googlenet, inception, mobilenetv2, resnet, resnext, vgg, wrn
from ._common import CIFAR10_MEAN, CIFAR10_STD, Classifier, Normalize

__all__ = ["ARCHITECTURES", "FAMILIES", "Classifier", "Normalize", "build_model", "family_of",
           "CIFAR10_MEAN", "CIFAR10_STD"]


@dataclass(frozen=True)
class ArchSpec:
    name: str
    family: str
    builder: Callable[..., nn.Module]


_FAMILY_MODULES: dict[str, ModuleType] = {
    "densenet": densenet,
    "wrn": wrn,
    "resnet": resnet,
    "vgg": vgg,
    "alexnet": alexnet,
    "inceptionv3": inception,
    "mobilenetv2": mobilenetv2,
    "resnext": resnext,
    "googlenet": googlenet,
}

ARCHITECTURES: dict[str, ArchSpec] = {
    arch: ArchSpec(arch, family, module.build)
    for family, module in _FAMILY_MODULES.items()
    for arch in module.ARCHS
}
FAMILIES: tuple[str, ...] = tuple(_FAMILY_MODULES)


def _check_arch(arch: str) -> ArchSpec:
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(
            f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        ) from None


def family_of(arch: str) -> str:
    """Family name of a registered architecture, e.g. ``family_of("vgg16") == "vgg"``."""
    return _check_arch(arch).family


def build_model(arch: str, *, width: float = 1.0, depth: float = 1.0, stem_stride: int = 1,
                num_classes: int = 10) -> Classifier:
    """Build a randomly initialised zoo model.

    Parameters
    ----------
    arch : str
        A key of :data:`ARCHITECTURES`, e.g. ``"resnet18"``.
    width, depth : float
        Channel and block-count multipliers, > 0.
    stem_stride : {1, 2}
        Stride of the first convolution.

    Returns
    -------
    Classifier
        ``Normalize`` + body; maps ``[B, 3, 32, 32]`` pixels in [0, 1] to ``[B, num_classes]`` logits.
    """
    spec = _check_arch(arch)
    if not width > 0 or not depth > 0:
        raise ValueError(f"width and depth must be > 0, got width={width}, depth={depth}")
    if stem_stride not in (1, 2):
        raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
    body = spec.builder(arch, width, depth, stem_stride, num_classes)
    return Classifier(body, arch=arch, family=spec.family)
