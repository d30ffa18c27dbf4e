"""APGD (Croce & Hein 2020): PGD with a momentum step and a step size that halves at
checkpoints when progress stalls — the adaptive attack of notebook 06b, with EOT over the
defended model's randomness (ensemble draws and noise) as Croce et al. (2022) recommend for
randomized defenses.

Per example: ``eta = 2 eps``; ``z = P(x_k + eta * dir(grad))``, ``x_{k+1} = P(x_k + 0.75 (z -
x_k) + 0.25 (x_k - x_{k-1}))``; at checkpoints ``w_j = ceil(p_j N)`` (``p_0 = 0, p_1 = 0.22,
p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``) the step halves and the iterate restarts from
the best point if fewer than ``rho`` of the steps since the last checkpoint raised the loss,
or if neither the step nor the best loss changed. The result is the best point found (highest
EOT-mean loss). Loss ``ce``, ``dlr`` or ``vote`` (:func:`semlib.attacks.gradient.attack_loss`;
``vote`` raises the mean soft vote of the best wrong class of the previous step, or of the target).

Given ``success`` (a callable ``success(x_adv, ids) -> bool [n]``, e.g. the Monte-Carlo judge
with fresh votes), every iterate is checked before its gradient is spent and the first
successful point of an example is its result; it stops spending passes (AutoAttack's rule,
here with the defense's own decision rule rather than one noisy forward pass).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..settings import check_real, is_int
from .base import Attack, Norm, as_norm, direction, project, random_start
from .gradient import default_chunk, eot_gradient, forward


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
    loss : ``"ce"``, ``"dlr"`` or ``"vote"``
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
        if self.loss not in ("ce", "dlr", "vote"):
            raise ValueError(f"unknown APGD loss {self.loss!r}; choose 'ce', 'dlr' or 'vote'")

    @property
    def name(self) -> str:
        return f"apgd-{self.loss}"

    checks_success = True

    def run(self, model, x, y, eps, target, generator, success=None):
        b, dev = len(x), x.device
        eta = (2 * eps).view(-1, 1, 1, 1).clone()
        cur = random_start(x, eps, self.norm, generator) if self.random_start else x.clone()
        prev = cur.clone()
        best_x, best_f = cur.clone(), torch.full((b,), float("-inf"), device=dev)
        best_g = torch.zeros_like(x)
        f_prev = torch.zeros(b, device=dev)
        raised = torch.zeros(b, device=dev)
        ckpts, last = checkpoints(self.steps), 0
        reduced, best_then = torch.zeros(b, dtype=torch.bool, device=dev), best_f.clone()  # halved at the last checkpoint
        done = torch.zeros(b, dtype=torch.bool, device=dev)  # a successful iterate was found
        result = x.clone()
        passes = torch.zeros(b, dtype=torch.long)
        self.begin(model, b, generator)
        aim = target if self.loss != "vote" or target is not None else _best_wrong(
            soft_votes(model, cur, generator), y)
        for k in range(self.steps + 1):
            if success is not None:
                self._check(success, cur, done, result)
            live = torch.nonzero(~done).flatten()
            if k == self.steps:
                break
            self.step(model, k, generator)  # held draws advance for every image, live or not, so an image's
            if len(live) == 0:              # draws never depend on when its batch-mates were broken
                continue
            out = eot_gradient(model, cur[live], y[live], None if aim is None else aim[live], eot=self.eot,
                               chunk=self.chunk or default_chunk(dev), generator=generator, loss=self.loss,
                               return_loss=True, channels_last=self.channels_last, ids=live,
                               return_votes=self.loss == "vote" and target is None)
            passes[live.cpu()] += self.eot
            g = torch.zeros_like(x)
            f = f_prev.clone()
            g[live], f[live] = out[0], out[1]
            if self.loss == "vote" and target is None:
                aim = aim.clone()
                aim[live] = _best_wrong(out[2], y[live])  # the next step aims at this step's best wrong class
            if k > 0:
                raised += (f > f_prev).float()
            f_prev = f
            better = (f > best_f) & ~done
            best_x[better], best_f[better], best_g[better] = cur[better], f[better], g[better]
            if k in ckpts:
                halve = halve_step(raised, k - last, self.rho, reduced, best_f, best_then)
                eta[halve] /= 2
                cur[halve], prev[halve], g[halve] = best_x[halve], best_x[halve], best_g[halve]
                raised.zero_()
                last, reduced, best_then = k, halve, best_f.clone()
            z = project(cur + eta * direction(g, self.norm), x, eps, self.norm)
            nxt = z if k == 0 else project(cur + self.momentum * (z - cur) + (1 - self.momentum) * (cur - prev),
                                           x, eps, self.norm)
            prev, cur = cur, nxt.detach()
        result[~done] = best_x[~done]
        return result, passes, self.spent(b, 0)

    @staticmethod
    def _check(success, cur: torch.Tensor, done: torch.Tensor, result: torch.Tensor) -> None:
        """Judge the iterates of the examples not yet broken; keep the first successful one."""
        rows = torch.nonzero(~done).flatten()
        if len(rows):
            hit = rows[success(cur[rows], rows).to(rows.device)]
            done[hit], result[hit] = True, cur[hit]


def halve_step(raised: torch.Tensor, interval: int, rho: float, reduced: torch.Tensor, best_f: torch.Tensor,
               best_then: torch.Tensor) -> torch.Tensor:
    """APGD's checkpoint rule (Croce & Hein 2020, conditions 1 and 2): halve the step where the
    loss rose in fewer than ``rho`` of the last ``interval`` steps, or where the step was not
    halved at the last checkpoint and the best loss has not improved since."""
    return (raised < rho * interval) | (~reduced & (best_f <= best_then))


@torch.no_grad()
def soft_votes(model, x: torch.Tensor, generator) -> torch.Tensor:
    """The soft vote ``softmax(logits)`` of one stochastic pass, ``[B, C]``."""
    return forward(model, x, torch.arange(len(x), device=x.device), generator).float().softmax(1)


def _best_wrong(votes: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The wrong class with the largest (mean soft) vote, ``[B]``."""
    return votes.scatter(1, y[:, None], float("-inf")).argmax(1)
