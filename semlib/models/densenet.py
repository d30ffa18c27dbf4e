"""DenseNet-BC (Huang et al. 2017): CIFAR DenseNet-100 (k=12) and the 121/161/169 layouts
with a 3x3 stem for 32x32 inputs."""
from __future__ import annotations

import torch
from torch import nn

from ._common import ch, head, reps


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(inplace=True), nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False),
        )

    def forward(self, x):
        return torch.cat([x, self.body(x)], 1)


def _transition(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2))


# arch: (layers per dense block, growth rate, stem channels)
_CONFIGS = {
    "densenet100": ((16, 16, 16), 12, 24),
    "densenet121": ((6, 12, 24, 16), 32, 64),
    "densenet161": ((6, 12, 36, 24), 48, 96),
    "densenet169": ((6, 12, 32, 32), 32, 64),
}


def build(arch: str, width: float, depth: float, stem_stride: int, num_classes: int) -> nn.Module:
    blocks, growth, stem = _CONFIGS[arch]
    growth = ch(growth, width, minimum=2)
    cin = ch(stem, width)
    layers: list[nn.Module] = [nn.Conv2d(3, cin, 3, stem_stride, 1, bias=False)]
    for i, n in enumerate(blocks):
        for _ in range(reps(n, depth)):
            layers.append(DenseLayer(cin, growth))
            cin += growth
        if i < len(blocks) - 1:
            layers.append(_transition(cin, cin // 2))
            cin //= 2
    layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True), head(cin, num_classes)]
    return nn.Sequential(*layers)


ARCHS = tuple(_CONFIGS)
