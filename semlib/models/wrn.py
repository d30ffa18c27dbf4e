"""Wide ResNet WRN-28-10 (Zagoruyko & Komodakis 2016), pre-activation blocks."""
from __future__ import annotations

from torch import nn

from ._common import ch, head, reps


class WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True))
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
        )
        self.shortcut = None if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        o = self.pre(x)
        return self.body(o) + (x if self.shortcut is None else self.shortcut(o))


def build(arch: str, width: float, depth: float, stem_stride: int, num_classes: int) -> nn.Module:
    n = reps((28 - 4) // 6, depth)
    widths = [ch(16, width)] + [ch(c * 10, width) for c in (16, 32, 64)]
    layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, stem_stride, 1, bias=False)]
    cin = widths[0]
    for i, cout in enumerate(widths[1:]):
        for j in range(n):
            layers.append(WideBlock(cin, cout, 2 if (j == 0 and i > 0) else 1))
            cin = cout
    layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True), head(cin, num_classes)]
    return nn.Sequential(*layers)


ARCHS = ("wrn28_10",)
