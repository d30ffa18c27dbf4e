"""Inception-v3 (Szegedy et al. 2016) for 32x32 inputs: a stride-1 stem, then the A (x3),
reduction-B, C (x4, factorized 7x7), reduction-D and E (x2) modules at 32, 16 and 8 pixels."""
from __future__ import annotations

import torch
from torch import nn

from ._common import ch, conv_bn_relu, head, reps
from .googlenet import Concat


def cbr(cin: int, cout: int, kernel: int | tuple[int, int] = 1, stride: int = 1) -> nn.Sequential:
    k = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, (k[0] // 2, k[1] // 2), bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def _pool_proj(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.AvgPool2d(3, 1, 1), cbr(cin, cout))


def block_a(cin: int, pool: int, w: float) -> tuple[Concat, int]:
    b1, b5r, b5, b3r, b3 = (ch(c, w) for c in (64, 48, 64, 64, 96))
    m = Concat(cbr(cin, b1), nn.Sequential(cbr(cin, b5r), cbr(b5r, b5, 5)),
               nn.Sequential(cbr(cin, b3r), cbr(b3r, b3, 3), cbr(b3, b3, 3)), _pool_proj(cin, pool))
    return m, b1 + b5 + b3 + pool


def reduction_b(cin: int, w: float) -> tuple[Concat, int]:
    b3, r, d = ch(384, w), ch(64, w), ch(96, w)
    m = Concat(cbr(cin, b3, 3, 2), nn.Sequential(cbr(cin, r), cbr(r, d, 3), cbr(d, d, 3, 2)), nn.MaxPool2d(3, 2, 1))
    return m, b3 + d + cin


def block_c(cin: int, c7: int, w: float) -> tuple[Concat, int]:
    o = ch(192, w)
    m = Concat(
        cbr(cin, o),
        nn.Sequential(cbr(cin, c7), cbr(c7, c7, (1, 7)), cbr(c7, o, (7, 1))),
        nn.Sequential(cbr(cin, c7), cbr(c7, c7, (7, 1)), cbr(c7, c7, (1, 7)), cbr(c7, c7, (7, 1)), cbr(c7, o, (1, 7))),
        _pool_proj(cin, o),
    )
    return m, 4 * o


def reduction_d(cin: int, w: float) -> tuple[Concat, int]:
    r, b3, b7 = ch(192, w), ch(320, w), ch(192, w)
    m = Concat(nn.Sequential(cbr(cin, r), cbr(r, b3, 3, 2)),
               nn.Sequential(cbr(cin, r), cbr(r, r, (1, 7)), cbr(r, r, (7, 1)), cbr(r, b7, 3, 2)),
               nn.MaxPool2d(3, 2, 1))
    return m, b3 + b7 + cin


class _Split(nn.Module):
    """A 1x3 and a 3x1 convolution on the same input, concatenated (module E)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.a, self.b = cbr(cin, cout, (1, 3)), cbr(cin, cout, (3, 1))

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], 1)


def block_e(cin: int, w: float) -> tuple[Concat, int]:
    b1, r3, b3, r33, pool = (ch(c, w) for c in (320, 384, 384, 448, 192))
    m = Concat(cbr(cin, b1), nn.Sequential(cbr(cin, r3), _Split(r3, b3)),
               nn.Sequential(cbr(cin, r33), cbr(r33, b3, 3), _Split(b3, b3)), _pool_proj(cin, pool))
    return m, b1 + 2 * b3 + 2 * b3 + pool


def build(arch: str, width: float, depth: float, stem_stride: int, num_classes: int) -> nn.Module:
    s1, s2, s3 = ch(32, width), ch(32, width), ch(64, width)
    layers: list[nn.Module] = [conv_bn_relu(3, s1, 3, stem_stride), conv_bn_relu(s1, s2), conv_bn_relu(s2, s3)]
    cin = s3
    for pool in (32, 64, 64)[: reps(3, depth)]:
        m, cin = block_a(cin, ch(pool, width), width)
        layers.append(m)
    m, cin = reduction_b(cin, width)
    layers.append(m)
    for c7 in (128, 160, 160, 192)[: reps(4, depth)]:
        m, cin = block_c(cin, ch(c7, width), width)
        layers.append(m)
    m, cin = reduction_d(cin, width)
    layers.append(m)
    for _ in range(reps(2, depth)):
        m, cin = block_e(cin, width)
        layers.append(m)
    layers.append(head(cin, num_classes))
    return nn.Sequential(*layers)


ARCHS = ("inceptionv3",)
