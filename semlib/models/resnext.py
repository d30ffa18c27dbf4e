"""CIFAR ResNeXt-29 (Xie et al. 2017): three stages of grouped-convolution bottlenecks."""
from __future__ import annotations

from torch import nn

from ._common import ch, conv_bn_relu, head, reps
from .resnet import Bottleneck

_CARDINALITY = 8
_BOTTLENECK_WIDTH = 64  # per group, first stage (ResNeXt-29 8x64d)


def build(arch: str, width: float, depth: float, stem_stride: int, num_classes: int) -> nn.Module:
    stem = ch(64, width)
    layers: list[nn.Module] = [conv_bn_relu(3, stem, 3, stem_stride)]
    cin = stem
    for i in range(3):
        # group width doubles each stage; the output is 4x the stage's planes
        planes = ch(64 * 2**i, width)
        inner = _CARDINALITY * max(1, int(round(_BOTTLENECK_WIDTH * 2**i * width)))
        for j in range(reps(3, depth)):
            layers.append(Bottleneck(cin, planes, 2 if (j == 0 and i > 0) else 1,
                                     groups=_CARDINALITY, inner=inner))
            cin = planes * Bottleneck.expansion
    layers.append(head(cin, num_classes))
    return nn.Sequential(*layers)


ARCHS = ("resnext29",)
