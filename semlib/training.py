"""Training one sub-model (architecture, sigma) on CIFAR-10 with Gaussian noise augmentation.

Recipe (one place, every value overridable through :class:`TrainConfig`): SGD with Nesterov
momentum, a linear warm-up then linear decay of the learning rate, label smoothing, random
crop (4-pixel zero padding) and horizontal flip, and Gaussian noise ``x + N(0, sigma^2)`` on
every training image (Cohen et al. 2019; sigma = 0 trains a plain model). On a CPU with bf16
support, bf16 autocast and channels_last roughly double training speed; channels_last alone
gains x1.1-1.3 on an AVX2-only CPU, with the layers oneDNN's AVX2 kernels get wrong kept
contiguous (:mod:`semlib.layout`; ``benchmarks/bench_training.py``). Evaluation for reported
numbers runs in fp32.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import layout
from .layout import autocast, bf16_available
from .smoothing import NoiseSpace, add_noise, check_sigma, noise_space


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (defaults: the laptop recipe)."""

    epochs: float = 4.0
    batch_size: int = 256
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup: float = 0.2  # fraction of steps with a rising learning rate
    sigma: float = 0.0
    noise_space: str = NoiseSpace.PIXEL.value
    bf16: bool = True
    channels_last: bool = True
    n_train: int | None = None  # first n training images (None = all 50,000)
    seed: int = 0

    def __post_init__(self) -> None:
        check_sigma(self.sigma)
        noise_space(self.noise_space)
        if not self.epochs > 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # mean loss per epoch (or part-epoch)
    seconds: float = 0.0
    images: int = 0


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with zero padding plus horizontal flip, vectorized over ``x`` ``[B, C, H, W]``."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # [B, H, 1]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # [B, 1, W]
    flip = torch.rand(b, generator=generator, device=x.device) < 0.5
    cols = torch.where(flip[:, None, None], 2 * dx[:, None, None] + w - 1 - cols, cols)
    bidx = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[bidx, rows, cols].permute(0, 3, 1, 2)


def lr_at(step: int, total: int, peak: float, warmup: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup * total`` steps, then linear decay to 0."""
    w = max(1, int(warmup * total))
    return peak * (step + 1) / w if step < w else peak * max(0.0, (total - step) / max(1, total - w))


def train(model: nn.Module, x_uint8: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
          progress: bool = True, desc: str = "train",
          loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          on_step: Callable[[nn.Module], None] | None = None) -> TrainResult:
    """Train ``model`` in place.

    Parameters
    ----------
    x_uint8 : uint8 ``[N, 3, 32, 32]`` training images (kept as uint8; batches become floats)
    y : int64 ``[N]``
    cfg : TrainConfig
    loss_fn : ``loss_fn(model, x, y) -> scalar`` on an augmented, noised batch; default the
        label-smoothed cross-entropy of ``model(x)`` (the ADP baseline passes its own)
    on_step : called with the model after every optimizer step (e.g. to keep a weight average)
    """
    if x_uint8.dtype != torch.uint8:
        raise ValueError(f"training images must be uint8 [N, 3, 32, 32], got {x_uint8.dtype}")
    if len(x_uint8) != len(y):
        raise ValueError(f"{len(x_uint8)} images but {len(y)} labels")
    if cfg.n_train is not None:
        x_uint8, y = x_uint8[: cfg.n_train], y[: cfg.n_train]
    device = next(model.parameters()).device
    order_gen = torch.Generator().manual_seed(cfg.seed)  # batch order, on the CPU
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)  # crops, flips, noise
    use_bf16 = cfg.bf16 and (device.type != "cpu" or bf16_available())
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.dim() > 1 else no_decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    n = len(y)
    steps_per_epoch = max(1, n // cfg.batch_size)  # drop the last partial batch
    total = max(1, int(round(cfg.epochs * steps_per_epoch)))
    result = TrainResult()
    start = time.perf_counter()
    with layout.channels_last(model, cfg.channels_last):  # exposed layers stay contiguous
        model.train()
        bar = tqdm(total=total, desc=desc, disable=not progress, leave=False)
        step, running, count = 0, 0.0, 0
        while step < total:
            order = torch.randperm(n, generator=order_gen)
            for i in range(steps_per_epoch):
                if step >= total:
                    break
                idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                xb = augment(x_uint8[idx].to(device).float().div_(255.0), gen)
                xb = add_noise(xb, cfg.sigma, cfg.noise_space, gen)
                # the crop leaves NHWC strides: say which layout the model gets
                xb = xb.contiguous(memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format)
                yb = y[idx].to(device)
                for group in opt.param_groups:
                    group["lr"] = lr_at(step, total, cfg.lr, cfg.warmup)
                with autocast(use_bf16, device):
                    if loss_fn is None:
                        loss = F.cross_entropy(model(xb), yb, label_smoothing=cfg.label_smoothing)
                    else:
                        loss = loss_fn(model, xb, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if on_step is not None:
                    on_step(model)
                running += loss.item() * len(idx)
                count += len(idx)
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{running / max(1, count):.3f}")
            result.losses.append(running / max(1, count))
            running, count = 0.0, 0
        bar.close()
    model.eval()
    result.seconds = time.perf_counter() - start
    result.images = total * cfg.batch_size
    return result


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500,
             bf16: bool = False) -> float:
    """Top-1 accuracy of a deterministic model on float pixels ``x`` ``[N, 3, 32, 32]`` (fp32 by default)."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for s in range(0, len(y), batch_size):
        with autocast(bf16, device):
            pred = model(x[s:s + batch_size].to(device)).argmax(1)
        correct += int((pred.cpu() == y[s:s + batch_size]).sum())
    return correct / len(y)
