"""GoogLeNet / Inception-v1 (Szegedy et al. 2015) for 32x32 inputs: a 3x3 stem and the
nine inception modules 3a..5b."""
from __future__ import annotations

import torch
from torch import nn

from ._common import ch, conv_bn_relu, head


class Concat(nn.Module):
    """Run parallel branches on one input and concatenate their outputs along channels."""

    def __init__(self, *branches: nn.Module):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], 1)


def inception(cin: int, n1: int, r3: int, n3: int, r5: int, n5: int, pool: int) -> Concat:
    return Concat(
        conv_bn_relu(cin, n1, 1),
        nn.Sequential(conv_bn_relu(cin, r3, 1), conv_bn_relu(r3, n3, 3)),
        # the 5x5 branch as two 3x3 convolutions, as in most CIFAR ports
        nn.Sequential(conv_bn_relu(cin, r5, 1), conv_bn_relu(r5, n5, 3), conv_bn_relu(n5, n5, 3)),
        nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn_relu(cin, pool, 1)),
    )


# stages of (n1, r3, n3, r5, n5, pool) modules, a max-pool between stages
_STAGES = (
    ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)),
    ((192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
     (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128)),
    ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)),
)


def build(arch: str, width: float, depth: float, stem_stride: int, num_classes: int) -> nn.Module:
    cin = ch(192, width)
    layers: list[nn.Module] = [conv_bn_relu(3, cin, 3, stem_stride)]
    for i, stage in enumerate(_STAGES):
        if i > 0:
            layers.append(nn.MaxPool2d(3, 2, 1))
        keep = max(1, int(round(len(stage) * depth)))
        for cfg in stage[-keep:]:  # the last module of a stage sets its output width
            n1, r3, n3, r5, n5, pool = (ch(c, width) for c in cfg)
            layers.append(inception(cin, n1, r3, n3, r5, n5, pool))
            cin = n1 + n3 + n5 + pool
    layers.append(head(cin, num_classes))
    return nn.Sequential(*layers)


ARCHS = ("googlenet",)
