"""AlexNet (Krizhevsky et al. 2012) for 32x32 inputs: five convolutions without batch norm,
three max-pools and a dropout MLP head."""
from __future__ import annotations

from torch import nn

from ._common import ch


def build(arch: str, width: float, depth: float, stem_stride: int, num_classes: int) -> nn.Module:
    c = [ch(x, width) for x in (64, 192, 384, 256, 256)]
    hidden = ch(1024, width, minimum=16)
    relu = lambda: nn.ReLU(inplace=True)  # noqa: E731
    features = [
        nn.Conv2d(3, c[0], 5, stem_stride, 2), relu(), nn.MaxPool2d(2),
        nn.Conv2d(c[0], c[1], 5, 1, 2), relu(), nn.MaxPool2d(2),
        nn.Conv2d(c[1], c[2], 3, 1, 1), relu(),
    ]
    if depth >= 1.0:  # the two middle 3x3 convolutions go first when a preset shrinks depth
        features += [nn.Conv2d(c[2], c[3], 3, 1, 1), relu(), nn.Conv2d(c[3], c[4], 3, 1, 1), relu()]
        cout = c[4]
    else:
        cout = c[2]
    features += [nn.AdaptiveMaxPool2d(2), nn.Flatten()]
    classifier = [
        nn.Dropout(0.5), nn.Linear(cout * 4, hidden), relu(),
        nn.Dropout(0.5), nn.Linear(hidden, hidden), relu(),
        nn.Linear(hidden, num_classes),
    ]
    return nn.Sequential(*features, *classifier)


ARCHS = ("alexnet",)
