"""Attack-success-rate versus distortion curves (Dong et al. 2019; ARES DistortionBenchmark).

For every example, the smallest budget at which an attack succeeds is searched, vectorized
over the batch with per-example state:

1. exponential search: ``lo = 0, hi = eps0``; attack at ``hi``; success stops the search,
   failure sets ``lo = hi, hi = 2 hi`` (at most ``search_steps`` rounds);
2. binary search, ``binary_steps`` rounds: ``mi = (lo + hi) / 2``; success sets ``hi = mi``
   and keeps that adversarial, failure sets ``lo = mi``; an example whose ``hi - lo`` falls
   below ``tol`` leaves the batch early;
3. the result is the measured distortion ``||x_adv - x||`` of the best successful
   adversarial, NaN if none succeeded.

Success is judged by the paper's Monte-Carlo rule (:func:`semlib.smoothing.mc_success`):
N stochastic predictions, abstention threshold alpha; :mod:`semlib.judge` stops the draws
for an example as soon as the remaining ones cannot change its verdict (exact). Examples already misclassified (or
already predicted as the target) at eps = 0 count as successes at distortion 0.
Every search step attacks from the clean image (no warm start).

``ASR(eps)`` is the fraction of all evaluated examples whose distortion is <= eps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from .attacks.base import Norm, as_norm, per_example_norm
from .settings import is_int, is_real
# semlib.judge.judge under the name it had here before (search_distortion's ``judge`` is its config)
from .judge import JudgeConfig, judge as mc_verdict, judge_rows
from .inputs import check_images, check_labels
from .smoothing import clopper_pearson
from .streams import select


@dataclass
class SearchConfig:
    """The eps search. ``eps0``: first budget of the exponential search (pixels in [0, 1])."""

    eps0: float = 1 / 255
    search_steps: int = 10
    binary_steps: int = 20
    tol: float = 0.0

    def __post_init__(self) -> None:
        if not (is_real(self.eps0) and math.isfinite(self.eps0) and self.eps0 > 0):
            raise ValueError(f"eps0 must be > 0 and finite, got {self.eps0!r}")
        if not (is_int(self.search_steps) and is_int(self.binary_steps) and self.search_steps >= 1
                and self.binary_steps >= 0):
            raise ValueError(f"search_steps must be >= 1 and binary_steps >= 0 (integers), got "
                             f"{self.search_steps!r}, {self.binary_steps!r}")
        if not (is_real(self.tol) and math.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"tol must be a finite number >= 0, got {self.tol!r}")


def search_distortion(attack: Callable, attack_model, judge_model, x: torch.Tensor, y: torch.Tensor,
                      target: torch.Tensor | None = None, *, norm: Norm | str = Norm.LINF,
                      search: SearchConfig | None = None, judge: JudgeConfig | None = None,
                      generator: torch.Generator | None = None, progress: Callable[[int], Any] | None = None,
                      ids: Any = None, clean_generator: torch.Generator | None = None,
                      keep: torch.Tensor | None = None) -> pd.DataFrame:
    """Minimal successful distortion per example (exponential then binary search, vectorized).

    Parameters
    ----------
    attack : an attack object ``attack(model, x, y, eps, target, generator)``
    attack_model : the model the attacker differentiates or queries (a surrogate for transfer)
    judge_model : the defended model whose Monte-Carlo votes decide success
    x, y, target : ``[B, 3, H, W]`` pixels in [0, 1], labels ``[B]``, optional targets ``[B]``
    judge : the Monte-Carlo rule (every judgement draws fresh votes)
    clean_generator : where clean correctness draws its votes (default ``generator``): the
        same generator state for every curve of one defense gives them one clean verdict
    keep : optional tensor shaped like ``x``: receives, per example, the adversarial image of its
        smallest successful distortion (the clean image when it is already adversarial)

    Returns
    -------
    DataFrame with one row per example: ``example`` (``ids``, e.g. canonical test indices;
    positions by default), ``distortion`` (float, NaN if
    never successful), ``clean_success`` (already adversarial at eps 0), ``clean_correct`` (the
    clean image is not misclassified by the Monte-Carlo rule), ``attack_runs``,
    ``gradients``, ``queries`` and ``judge_draws`` spent.
    """
    norm = as_norm(norm)
    search = search or SearchConfig()
    judge = judge or JudgeConfig()
    check_images(x)
    check_labels(y, len(x), "labels", device=x.device)
    if target is not None:
        check_labels(target, len(x), "targets", device=x.device, of="the labels")
    b = len(x)
    dev = x.device
    wrong, draws = mc_verdict(judge_model, x, y, None, judge, clean_generator or generator)
    clean_correct, clean = ~wrong, wrong
    if target is not None:  # already at the target: a targeted question, judged apart
        clean, extra = mc_verdict(judge_model, x, y, target, judge, generator)
        draws = draws + extra
    dist = torch.full((b,), float("nan"), dtype=torch.float64)
    dist[clean.cpu()] = 0.0
    if keep is not None:
        if keep.shape != x.shape or keep.device != x.device:
            raise ValueError(f"keep must be shaped and placed like x ({tuple(x.shape)} on {x.device}), got "
                             f"{tuple(keep.shape)} on {keep.device}")
        keep[clean] = x[clean]
    lo = torch.zeros(b, dtype=x.dtype, device=dev)
    hi = torch.full((b,), search.eps0, dtype=x.dtype, device=dev)
    found = torch.zeros(b, dtype=torch.bool, device=dev)  # exponential phase over (binary phase)
    rounds = torch.zeros(b, dtype=torch.long, device=dev)
    active = ~clean
    runs = torch.zeros(b, dtype=torch.long)
    grads = torch.zeros(b, dtype=torch.long)
    queries = torch.zeros(b, dtype=torch.long)
    judge_draws = draws.cpu().clone()
    while bool(active.any()):
        idx = torch.nonzero(active).flatten()
        eps = torch.where(found[idx], (lo[idx] + hi[idx]) / 2, hi[idx])
        gen = select(generator, idx.cpu())  # per-request streams follow the images, not their positions
        res = attack(attack_model, x[idx], y[idx], eps, None if target is None else target[idx], gen,
                     **({"success": lambda xa, at, idx=idx: judge_rows(judge_model, xa, y, target, judge, generator,
                                                                        idx[at], judge_draws)}
                        if getattr(attack, "checks_success", False) else {}))  # the kept point is judged again below
        ok, d = mc_verdict(judge_model, res.x_adv, y[idx], None if target is None else target[idx], judge, gen)
        ci = idx.cpu()
        runs[ci] += 1
        grads[ci] += res.gradients.cpu()
        queries[ci] += res.queries.cpu()
        judge_draws[ci] += d.cpu()
        measured = per_example_norm(res.x_adv - x[idx], norm).double().cpu()
        okc = ok.cpu()
        if keep is not None:  # a success below the smallest so far (or the first): its image
            better = (okc & ~(dist[ci] <= measured)).to(dev)
            keep[idx[better]] = res.x_adv[better].to(keep.dtype)
        dist[ci[okc]] = torch.fmin(dist[ci[okc]], measured[okc])  # keep the smallest successful distortion
        in_binary = found[idx]
        # exponential phase
        exp_fail = ~in_binary & ~ok
        lo[idx[exp_fail]] = hi[idx[exp_fail]]
        hi[idx[exp_fail]] = 2 * hi[idx[exp_fail]]
        # binary phase: success tightens hi, failure raises lo
        hi[idx[in_binary & ok]] = eps[in_binary & ok]
        lo[idx[in_binary & ~ok]] = eps[in_binary & ~ok]
        rounds[idx] += 1
        # an exponential-phase success starts the binary phase with a fresh round count
        newly = ~in_binary & ok
        found[idx[newly]] = True
        rounds[idx[newly]] = 0
        exhausted = torch.where(found[idx], rounds[idx] >= search.binary_steps, rounds[idx] >= search.search_steps)
        converged = found[idx] & (hi[idx] - lo[idx] <= search.tol)
        active[idx[exhausted | converged]] = False
        if progress is not None:
            progress(int(active.sum()))
    return pd.DataFrame({
        "example": np.arange(b) if ids is None else np.asarray(ids), "distortion": dist.numpy(), "clean_success": clean.cpu().numpy(),
        "clean_correct": clean_correct.cpu().numpy(),
        "attack_runs": runs.numpy(), "gradients": grads.numpy(), "queries": queries.numpy(),
        "judge_draws": judge_draws.numpy(),
    })


def asr_curve(distortion: pd.Series | np.ndarray, eps_grid: np.ndarray | list[float], ci_alpha: float = 0.05
              ) -> pd.DataFrame:
    """ASR at each eps of ``eps_grid``: fraction of all examples with distortion <= eps (NaN =
    failure), with a two-sided (1 - ci_alpha) Clopper-Pearson band. Columns eps, asr, lo, hi, n."""
    d = np.asarray(distortion, dtype=float)
    n = len(d)
    if n == 0:
        raise ValueError("no examples: cannot compute an ASR curve")
    grid = np.asarray(eps_grid, dtype=float)
    if grid.ndim != 1 or not np.isfinite(grid).all() or (grid < 0).any():
        raise ValueError(f"eps_grid must be a 1-D list of finite budgets >= 0, got "
                         f"{grid.ravel()[:6].tolist()}{' ...' if grid.size > 6 else ''} (shape {grid.shape})")
    k = torch.tensor([(np.nan_to_num(d, nan=np.inf) <= e).sum() for e in grid])
    lo, hi = clopper_pearson(k, n, ci_alpha)
    return pd.DataFrame({"eps": grid, "asr": k.numpy() / n, "lo": lo.numpy(), "hi": hi.numpy(), "n": n})
