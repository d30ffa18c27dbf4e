"""VGG-11/13/16/19 with batch norm (Simonyan & Zisserman 2015), CIFAR head (one linear layer)."""
from __future__ import annotations

from torch import nn

from ._common import ch, conv_bn_relu

_M = "M"
_CONFIGS = {
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


def build(arch: str, width: float, depth: float, stem_stride: int, num_classes: int) -> nn.Module:
    layers: list[nn.Module] = []
    cin, size = 3, 32
    for i, stage in enumerate(_CONFIGS[arch]):
        keep = max(1, int(round(len(stage) * depth)))
        for j, c in enumerate(stage[:keep]):
            stride = stem_stride if (i == 0 and j == 0) else 1
            layers.append(conv_bn_relu(cin, ch(c, width), 3, stride))
            cin, size = ch(c, width), size // stride
        if size > 1:  # a stride-2 stem leaves one pooling too many for 32x32 inputs
            layers.append(nn.MaxPool2d(2))
            size //= 2
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


ARCHS = tuple(_CONFIGS)
