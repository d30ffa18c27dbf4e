"""The Monte-Carlo judge: is an image adversarial for a stochastic model? The paper's success
rule (eq. 5–6: :func:`semlib.smoothing.mc_success`, from vote counts) decided with the fewest
votes that settle it: votes are drawn in rounds and an example stops as soon as the remaining
votes cannot change its verdict, so the verdict is the one all ``n`` votes would give.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .settings import is_int, is_real
from .smoothing import call_classifier, votes_needed
from .streams import bind, select


@dataclass
class JudgeConfig:
    """Monte-Carlo judgement: ``n`` draws (1 for deterministic models), threshold ``alpha``.
    Votes are drawn in rounds: per undecided example, the fewest votes after which its verdict
    could be settled, and at least ``round_size``; ``chunk`` votes per pass of a sub-model (a
    model that routes rows to some of its sub-models, e.g. the SEM, gets ``chunk * fanout``)."""

    n: int = 100
    alpha: float = 0.3
    round_size: int = 1
    chunk: int = 256

    def __post_init__(self) -> None:
        if not (is_int(self.n) and self.n >= 1):
            raise ValueError(f"n (Monte-Carlo draws) must be >= 1, got {self.n!r}")
        if not (is_real(self.alpha) and 0 < self.alpha <= 1):
            raise ValueError(f"alpha must lie in (0, 1], got {self.alpha!r}")
        if not (is_int(self.round_size) and is_int(self.chunk) and self.round_size >= 1 and self.chunk >= 1):
            raise ValueError(f"round_size and chunk must be integers >= 1, got {self.round_size!r}, {self.chunk!r}")


@torch.no_grad()
def judge(model, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, config: JudgeConfig,
          generator: torch.Generator | None = None, num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Attack success per example by the Monte-Carlo rule, with an exact early stop.

    Returns ``success`` bool ``[B]`` and ``draws`` int64 ``[B]`` (votes actually spent; ``n``
    without the early stop). The verdict equals the one the full ``n`` votes would give.
    """
    b = len(x)
    counts = torch.zeros(b, num_classes, dtype=torch.long, device=x.device)
    need = votes_needed(config.alpha, config.n)  # votes that make "c_j / n >= alpha" true
    undecided = torch.ones(b, dtype=torch.bool, device=x.device)
    success = torch.zeros(b, dtype=torch.bool, device=x.device)
    cls = y if target is None else target
    while bool(undecided.any()):
        rows = torch.nonzero(undecided).flatten()
        take = _draws_until_decidable(counts[rows], cls[rows], need, config.n, target is not None).clamp(
            min=config.round_size)
        take = torch.minimum(take, config.n - counts[rows].sum(1))
        owners = rows.repeat_interleave(take)
        chunk = config.chunk * getattr(model, "fanout", 1)
        for s in range(0, len(owners), chunk):
            idx = owners[s:s + chunk]
            pred = call_classifier(model, x[idx], bind(generator, len(idx), idx)).argmax(1)  # a vote per row
            counts.index_put_((idx, pred), torch.ones_like(pred), accumulate=True)
        drawn = counts.sum(1)
        left = config.n - drawn
        own = counts.gather(1, cls[:, None]).squeeze(1)
        best_other = counts.scatter(1, cls[:, None], -1).amax(1)
        if target is None:
            # an alpha fraction already voted elsewhere, or y can no longer be the top class
            sure_success = (best_other >= need) | (own + left < best_other)
            sure_fail = (best_other + left < need) & (own > best_other + left)
        else:
            # the target has an alpha fraction, or stays the strict top class whatever comes
            sure_success = (own >= need) | (own > best_other + left)
            sure_fail = (own + left < need) & (own + left < best_other)
        finished = left == 0
        full = counts.argmax(1)
        final = (full != y) | (best_other >= need) if target is None else (full == target) | (own >= need)
        verdict = torch.where(sure_success, True, torch.where(sure_fail, False, final))
        decided = undecided & (sure_success | sure_fail | finished)
        success[decided] = verdict[decided]
        undecided &= ~decided
    return success, counts.sum(1)


def judge_rows(model, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, config: JudgeConfig,
               generator, rows: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
    """:func:`judge` of ``x``, the images at positions ``rows`` of a batch whose labels (and
    targets) are ``y`` (``target``) and whose streams are ``generator``; their draws are added
    to ``draws`` (per batch position, on the CPU). Returns the verdicts."""
    ok, d = judge(model, x, y[rows], None if target is None else target[rows], config,
                  select(generator, rows.cpu()))
    draws[rows.cpu()] += d.cpu()
    return ok


def _draws_until_decidable(counts: torch.Tensor, cls: torch.Tensor, need: int, n: int, targeted: bool
                           ) -> torch.Tensor:
    """A lower bound on the further votes before each verdict could be settled early (by any
    of the rules in :func:`judge`), never below 1: drawing that many wastes no vote."""
    left = n - counts.sum(1)
    own = counts.gather(1, cls[:, None]).squeeze(1)
    other = counts.scatter(1, cls[:, None], -1).amax(1)
    if targeted:
        reach, lead, fail = need - own, (other + left - own + 2) // 2, left - need + own + 1
    else:
        reach, lead, fail = need - other, (own + left - other + 2) // 2, left - need + other + 1
    return torch.minimum(torch.minimum(reach, lead), fail).clamp(min=1)
