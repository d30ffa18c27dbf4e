"""MobileNetV2 (Sandler et al. 2018) for CIFAR: inverted residuals, stride 1 in the stem and in
the second stage so 32x32 inputs end at 4x4."""
from __future__ import annotations

from torch import nn

from ._common import ch, conv_bn_relu, head, reps

# (expansion, out channels, repeats, stride)
_CONFIG = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, expansion: int, stride: int):
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = [] if expansion == 1 else [conv_bn_relu(cin, hidden, 1)]
        layers += [conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def build(arch: str, width: float, depth: float, stem_stride: int, num_classes: int) -> nn.Module:
    cin = ch(32, width)
    layers: list[nn.Module] = [conv_bn_relu(3, cin, 3, stem_stride)]
    for t, c, n, s in _CONFIG:
        cout = ch(c, width)
        for j in range(reps(n, depth)):
            layers.append(InvertedResidual(cin, cout, t, s if j == 0 else 1))
            cin = cout
    last = ch(1280, width, minimum=32)
    layers += [conv_bn_relu(cin, last, 1), head(last, num_classes)]
    return nn.Sequential(*layers)


ARCHS = ("mobilenetv2",)
