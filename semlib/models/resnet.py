"""CIFAR-style ResNet-18/34/50 (He et al. 2016): 3x3 stem, four stages, widths 64..512."""
from __future__ import annotations

from torch import nn

from ._common import ch, conv_bn_relu, head, reps


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, groups: int = 1):
        super().__init__()
        cout = planes * self.expansion
        self.body = nn.Sequential(
            conv_bn_relu(cin, planes, 3, stride),
            nn.Conv2d(planes, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = _shortcut(cin, cout, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, groups: int = 1, inner: int | None = None):
        super().__init__()
        inner = inner or planes
        cout = planes * self.expansion
        self.body = nn.Sequential(
            conv_bn_relu(cin, inner, 1),
            conv_bn_relu(inner, inner, 3, stride, groups=groups),
            nn.Conv2d(inner, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = _shortcut(cin, cout, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


_CONFIGS = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


def build(arch: str, width: float, depth: float, stem_stride: int, num_classes: int) -> nn.Module:
    block, blocks = _CONFIGS[arch]
    widths = [ch(w, width) for w in (64, 128, 256, 512)]
    layers: list[nn.Module] = [conv_bn_relu(3, widths[0], 3, stem_stride)]
    cin = widths[0]
    for i, (planes, n) in enumerate(zip(widths, blocks)):
        for j in range(reps(n, depth)):
            layers.append(block(cin, planes, 2 if (j == 0 and i > 0) else 1))
            cin = planes * block.expansion
    layers.append(head(cin, num_classes))
    return nn.Sequential(*layers)


ARCHS = tuple(_CONFIGS)
