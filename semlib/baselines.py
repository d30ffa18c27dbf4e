"""Baseline defenses of the paper's Fig. 3 besides ensemble smoothing: RSE and ADP.

* RSE — random self-ensemble (Liu et al. 2018): Gaussian noise layers before the convolutions
  (``init_sigma`` before the first, ``inner_sigma`` before the others), active in training and
  at inference; the prediction averages the softmax of ``passes`` noisy passes.
* ADP — adaptive diversity promoting regularizer (Pang et al. 2019) for training an ensemble:
  the members' cross-entropies, minus ``alpha`` times the entropy of the ensemble's mean
  prediction, minus ``beta`` times ``log(det(M^T M) + delta)`` where the columns of M are the
  members' *non-maximal* predictions (the probability vector without the true class),
  normalized to unit length — the ensemble diversity.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RSE(nn.Module):
    """RSE around a zoo model; a stochastic classifier ``forward(x, generator) -> logits``
    (log of the mean softmax over ``passes`` noisy passes).

    The noise layers are forward pre-hooks on ``base``'s convolutions: ``base`` belongs to the
    RSE from then on (train it through the RSE; called alone it is noisy too).
    """

    def __init__(self, base: nn.Module, init_sigma: float = 0.2, inner_sigma: float = 0.1, passes: int = 1):
        super().__init__()
        if init_sigma < 0 or inner_sigma < 0 or passes < 1:
            raise ValueError(f"need sigmas >= 0 and passes >= 1, got {init_sigma}, {inner_sigma}, {passes}")
        self.base, self.passes = base, passes
        self.init_sigma, self.inner_sigma = init_sigma, inner_sigma
        self._generator: torch.Generator | None = None
        convs = [m for m in base.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError("RSE needs a model with convolutions")
        for i, conv in enumerate(convs):
            conv.register_forward_pre_hook(self._noise_hook(init_sigma if i == 0 else inner_sigma))

    def _noise_hook(self, sigma: float):
        def hook(module, args):
            (x,) = args
            if sigma == 0:
                return None
            noise = torch.randn(x.shape, generator=self._generator, device=x.device, dtype=x.dtype)
            return (x + sigma * noise,)

        return hook

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self._generator = generator
        try:
            if self.passes == 1:
                return self.base(x)
            probs = torch.stack([self.base(x).softmax(1) for _ in range(self.passes)]).mean(0)
            return probs.clamp_min(1e-12).log()
        finally:
            self._generator = None


def adp_loss(logits: list[torch.Tensor] | torch.Tensor, y: torch.Tensor, alpha: float = 2.0, beta: float = 0.5,
             delta: float = 1e-20) -> torch.Tensor:
    """The ADP training loss (mean over the batch).

    Parameters
    ----------
    logits : K member outputs, each ``[B, C]`` (or a tensor ``[K, B, C]``)
    y : ``[B]`` labels
    alpha, beta, delta : weights of the ensemble entropy and of the log ensemble diversity,
        and the diversity's floor (Pang et al.: 2, 0.5, 1e-20)
    """
    z = torch.stack(list(logits)) if not isinstance(logits, torch.Tensor) else logits
    k, b, c = z.shape
    if k < 2:
        raise ValueError(f"ADP needs at least 2 ensemble members, got {k}")
    ce = sum(F.cross_entropy(z[i], y) for i in range(k))
    p = z.softmax(-1)  # [K, B, C]
    mean = p.mean(0)
    entropy = -(mean * mean.clamp_min(1e-20).log()).sum(-1).mean()
    keep = torch.ones(b, c, dtype=torch.bool, device=z.device)
    keep[torch.arange(b), y] = False
    non_max = p[:, keep].view(k, b, c - 1).permute(1, 2, 0)  # [B, C-1, K]
    non_max = non_max / non_max.norm(dim=1, keepdim=True).clamp_min(1e-20)
    gram = non_max.transpose(1, 2) @ non_max  # [B, K, K]
    log_det = torch.log(torch.linalg.det(gram) + delta).mean()
    return ce - alpha * entropy - beta * log_det
