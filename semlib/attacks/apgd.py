"""APGD (Croce & Hein 2020): PGD with a momentum step and a step size that halves at
checkpoints when progress stalls — the adaptive attack of notebook 06b, with EOT over the
defended model's randomness (ensemble draws and noise) as Croce et al. (2022) recommend for
randomized defenses.

Per example: ``eta = 2 eps``; ``z = P(x_k + eta * dir(grad))``, ``x_{k+1} = P(x_k + 0.75 (z -
x_k) + 0.25 (x_k - x_{k-1}))``; at checkpoints ``w_j = ceil(p_j N)`` (``p_0 = 0, p_1 = 0.22,
p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``) the step halves and the iterate restarts from
the best point if fewer than ``rho`` of the steps since the last checkpoint raised the loss,
or if neither the step nor the best loss changed. The result is the best point found (highest
EOT-mean loss). Loss ``ce`` or ``dlr`` (:func:`semlib.attacks.gradient.attack_loss`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..settings import check_real, is_int
from .base import Attack, Norm, as_norm, direction, project, random_start
from .gradient import default_chunk, eot_gradient


def checkpoints(steps: int) -> list[int]:
    """The iterations at which APGD may halve its step size."""
    p = [0.0, 0.22]
    while p[-1] + max(p[-1] - p[-2] - 0.03, 0.06) <= 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    w = (math.ceil(round(q * steps, 9)) for q in p[1:])
    return sorted({v for v in w if 0 < v < steps})


@dataclass
class APGD(Attack):
    """Auto-PGD, Linf or L2, untargeted or targeted, per-example eps, EOT over ``eot`` passes.

    Parameters
    ----------
    steps : iterations (one EOT gradient each)
    loss : ``"ce"`` or ``"dlr"``
    eot : stochastic passes averaged per iteration
    momentum : weight of the new step (0.75 in the paper)
    rho : fraction of loss-raising steps below which the step size halves
    random_start : start from a random point of the eps-ball (as in the paper)
    """

    norm: Norm | str = Norm.LINF
    steps: int = 100
    loss: str = "ce"
    eot: int = 20
    momentum: float = 0.75
    rho: float = 0.75
    random_start: bool = True
    chunk: int | None = None
    channels_last: bool = False  # feed the passes channels_last (the model inside layout.channels_last)

    def __post_init__(self) -> None:
        self.norm = as_norm(self.norm)
        if not all(is_int(v) and v >= 1
                   for v in (self.steps, self.eot, 1 if self.chunk is None else self.chunk)):
            raise ValueError(f"steps and eot must be >= 1 (and chunk, if given), got {self.steps!r}, {self.eot!r}, "
                             f"{self.chunk!r}")
        check_real("momentum", self.momentum, hi=1.0)
        check_real("rho", self.rho, hi=1.0)
        if self.loss not in ("ce", "dlr"):
            raise ValueError(f"unknown APGD loss {self.loss!r}; choose 'ce' or 'dlr'")

    @property
    def name(self) -> str:
        return f"apgd-{self.loss}"

    def run(self, model, x, y, eps, target, generator):
        b = len(x)
        eta = (2 * eps).view(-1, 1, 1, 1).clone()
        cur = random_start(x, eps, self.norm, generator) if self.random_start else x.clone()
        prev = cur.clone()
        best_x, best_f = cur.clone(), torch.full((b,), float("-inf"), device=x.device)
        best_g = torch.zeros_like(x)
        f_prev = None
        raised = torch.zeros(b, device=x.device)
        ckpts, last = checkpoints(self.steps), 0
        eta_then, best_then = eta.clone(), best_f.clone()
        self.begin(model, b, generator)
        for k in range(self.steps):
            self.step(model, k, generator)
            g, f = eot_gradient(model, cur, y, target, eot=self.eot, chunk=self.chunk or default_chunk(x.device),
                                generator=generator, loss=self.loss, return_loss=True,
                                channels_last=self.channels_last)
            if f_prev is not None:
                raised += (f > f_prev).float()
            f_prev = f
            better = f > best_f
            best_x[better], best_f[better], best_g[better] = cur[better], f[better], g[better]
            if k in ckpts:
                stalled = raised < self.rho * (k - last)
                frozen = (eta.view(-1) == eta_then.view(-1)) & (best_f == best_then)
                halve = stalled | frozen
                eta[halve] /= 2
                cur[halve], prev[halve], g[halve] = best_x[halve], best_x[halve], best_g[halve]
                raised.zero_()
                last, eta_then, best_then = k, eta.clone(), best_f.clone()
            z = project(cur + eta * direction(g, self.norm), x, eps, self.norm)
            nxt = z if k == 0 else project(cur + self.momentum * (z - cur) + (1 - self.momentum) * (cur - prev),
                                           x, eps, self.norm)
            prev, cur = cur, nxt.detach()
        return best_x, self.spent(b, self.steps * self.eot), self.spent(b, 0)
