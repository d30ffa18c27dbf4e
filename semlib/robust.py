"""Robust accuracy at a fixed budget, in the format researchers know (RobustBench): per image, the defense's
clean Monte-Carlo verdict and whether the strongest of several attacks finds a point the defense's own rule
calls adversarial. One attack run per image and attack (no eps search).

The attacks (AutoAttack's white-box part for randomized defenses, Croce et al. 2022, plus a loss aimed at
the Monte-Carlo rule), each with EOT over the defense's randomness and success judged at every iterate with
fresh votes (:class:`semlib.attacks.APGD` ``success``):

``apgd-ce``
    untargeted APGD on the cross-entropy;
``apgd-dlr-t``
    targeted APGD on the DLR loss, once per target: the ``targets`` classes other than the label with the
    largest mean soft vote on the clean image;
``apgd-vote``
    untargeted APGD on the soft-vote margin of the best wrong class (``attack_loss`` ``vote``);
``apgd-expected``
    (a SEM only) untargeted APGD-CE on the SEM's expected logits over its draws, every sub-model of the
    collection weighted by its probability of being drawn (:func:`surrogate`);
``apgd-plain``
    (a SEM only) the same on its unsmoothed sub-models alone: noise-free gradients aimed at the draws that
    include them (their logits are not blurred by noise).

A success is accepted when a second, independent judgement of the same point agrees: with one look per iterate,
a robust image whose best wrong class gets a vote share below alpha would be called broken by chance at one of
the ~100 looks of a run far more often than at one (``unconfirmed`` counts the looks the second judgement
overruled). The clean verdict comes from streams of its own (the model and the judge, not the budget), so every
budget and sweep point starts from the same clean images.

An image is robust when it is classified correctly (Monte-Carlo rule, abstention counts as an error) and
every attack fails; each attack only sees the images still robust (the strongest per image is kept).
Deterministic models get one pass per step and one vote; an attack that does not apply (the SEM-only
ones) is skipped. :func:`worst_case` joins two evaluations of the same images.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from . import runner
from .attacks import APGD
from .cache import request_streams
from .certification import per_model
from .attacks.apgd import soft_votes
from .ensemble import Ensemble, StochasticEnsemble
from .judge import JudgeConfig, judge, judge_rows
from .settings import is_int, is_real
from .scenarios import Defended
from .smoothing import clopper_pearson, deterministic
from .streams import select
from .study import from_recipe
from .runner import Executor

ATTACKS = ("apgd-ce", "apgd-dlr-t", "apgd-vote", "apgd-expected", "apgd-plain")
SURROGATE = ("apgd-expected", "apgd-plain")  # attacks on a model derived from the SEM
DEFENSES = ("SEM", "F", "G", "H", "I", "RSE", "ADP")  # the table's rows
_DEFENDED = {"SEM": Defended.SEM, "F": Defended.ENSEMBLE_SMOOTHED, "G": Defended.SINGLE_SMOOTHED,
             "H": Defended.ENSEMBLE, "I": Defended.SINGLE}


@dataclass
class RobustConfig:
    """A fixed-budget evaluation: ``eps`` in the ``norm`` (pixels in [0, 1]); every attack runs
    ``steps`` iterations of ``eot`` samples; ``votes`` soft-vote passes pick the targets."""

    eps: float
    norm: str = "linf"
    steps: int = 100
    eot: int = 20
    attacks: tuple[str, ...] = ATTACKS
    targets: int = 9
    votes: int = 8
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    channels_last: bool = False

    def __post_init__(self) -> None:
        if not (is_real(self.eps) and np.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"eps must be a finite budget >= 0, got {self.eps!r}")
        if not all(is_int(v) and v >= 1 for v in (self.steps, self.eot, self.targets, self.votes)):
            raise ValueError(f"steps, eot, targets and votes must be integers >= 1, got {self.steps!r}, "
                             f"{self.eot!r}, {self.targets!r}, {self.votes!r}")
        unknown = [a for a in self.attacks if a not in ATTACKS]
        if unknown or not self.attacks:
            raise ValueError(f"attacks must name some of {list(ATTACKS)}, got {list(self.attacks)}")
        self.attacks = tuple(self.attacks)
        if isinstance(self.judge, dict):
            self.judge = JudgeConfig(**self.judge)


def evaluate(attack_model, judge_model, x: torch.Tensor, y: torch.Tensor, cfg: RobustConfig,
             generator: torch.Generator | None = None, ids=None, clean_generator=None) -> pd.DataFrame:
    """One row per image: ``example``, ``clean_correct``, ``robust``, ``broken_by`` (the first
    attack that succeeded, "" if none), ``gradients`` (EOT passes spent), ``judge_draws`` and
    ``unconfirmed`` (successes a second judgement overruled).

    ``attack_model`` is differentiated (the defense itself for a white-box evaluation),
    ``judge_model`` decides success by its Monte-Carlo rule; ``clean_generator`` (default
    ``generator``) draws the clean verdict's votes."""
    fixed = deterministic(judge_model)
    jcfg = JudgeConfig(n=1, alpha=cfg.judge.alpha, chunk=cfg.judge.chunk) if fixed else cfg.judge
    b = len(x)
    wrong, draws = judge(judge_model, x, y, None, jcfg, generator if clean_generator is None else clean_generator)
    alive = ~wrong
    clean_correct = alive.clone()
    broken_by = np.array([""] * b, dtype=object)
    grads, overruled = torch.zeros(b, dtype=torch.long), torch.zeros(b, dtype=torch.long)
    draws = draws.cpu().clone()
    eps = torch.full((b,), float(cfg.eps), device=x.device)

    def run(rows: torch.Tensor, loss: str, target: torch.Tensor | None, model=attack_model) -> torch.Tensor:
        """Attack ``rows`` through ``model``; which of them were broken (judged at every iterate)."""
        hit = torch.zeros(len(rows), dtype=torch.bool, device=x.device)

        def success(xa: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
            ok = judge_rows(judge_model, xa, y, None, jcfg, generator, rows[at], draws)
            if not fixed and ok.any():  # a second, independent judgement of the candidates
                cand = torch.nonzero(ok).flatten()
                again = judge_rows(judge_model, xa[cand], y, None, jcfg, generator, rows[at][cand], draws)
                overruled[rows[at][cand[~again]].cpu()] += 1
                ok = ok.clone()
                ok[cand[~again]] = False
            hit[at[ok]] = True
            return ok

        eot = 1 if deterministic(model) else cfg.eot
        attack = APGD(norm=cfg.norm, steps=cfg.steps, eot=eot, loss=loss, channels_last=cfg.channels_last)
        res = attack(model, x[rows], y[rows], eps[rows], target, select(generator, rows.cpu()), success=success)
        grads[rows.cpu()] += res.gradients
        return hit

    for name in cfg.attacks:
        if name == "apgd-dlr-t":
            ranking = _ranking(attack_model, x, y, cfg.votes, generator)
            for j in range(min(cfg.targets, ranking.shape[1])):
                rows = torch.nonzero(alive).flatten()
                if len(rows) == 0:
                    break
                hit = run(rows, "dlr", ranking[rows, j])
                _mark(rows[hit], name, alive, broken_by)
        elif name in SURROGATE:
            model, rows = surrogate(attack_model, name), torch.nonzero(alive).flatten()
            if model is not None and len(rows):
                _mark(rows[run(rows, "ce", None, model)], name, alive, broken_by)
        else:
            rows = torch.nonzero(alive).flatten()
            if len(rows):
                _mark(rows[run(rows, name.removeprefix("apgd-"), None)], name, alive, broken_by)
    return pd.DataFrame({"example": np.arange(b) if ids is None else np.asarray(ids),
                         "clean_correct": clean_correct.cpu().numpy(), "robust": alive.cpu().numpy(),
                         "broken_by": broken_by, "gradients": grads.numpy(), "judge_draws": draws.numpy(),
                         "unconfirmed": overruled.numpy()})


def _mark(rows: torch.Tensor, name: str, alive: torch.Tensor, broken_by: np.ndarray) -> None:
    alive[rows] = False
    broken_by[rows.cpu().numpy()] = name


def surrogate(model, attack: str) -> Ensemble | None:
    """The model ``attack`` (one of :data:`SURROGATE`) differentiates for a SEM ``model``: its
    expected logits over draws, ``E[sum_{k in draw} f_k(x + delta_k)] = sum_m P(m drawn) f_m(x +
    delta_m)`` (:meth:`~semlib.ensemble.SEMSampler.inclusion`), over the whole collection
    (``apgd-expected``) or its unsmoothed sub-models (``apgd-plain``). None for any other
    model, or a SEM without unsmoothed sub-models."""
    if not isinstance(model, StochasticEnsemble):
        return None
    p = model.sampler.inclusion().float()
    keep = [j for j, m in enumerate(model.members) if attack == "apgd-expected" or deterministic(m)]
    if not keep:
        return None
    return Ensemble([model.members[j] for j in keep], p[keep], [model.names[j] for j in keep])


@torch.no_grad()
def _ranking(model, x: torch.Tensor, y: torch.Tensor, votes: int, generator) -> torch.Tensor:
    """Classes other than the label, by decreasing mean soft vote over ``votes`` passes, ``[B, C - 1]``."""
    passes = 1 if deterministic(model) else votes
    p = sum(soft_votes(model, x, generator) for _ in range(passes)) / passes
    order = p.scatter(1, y[:, None], float("-inf")).argsort(1, descending=True)
    return order[:, :-1]


def table(rows: pd.DataFrame, by: str | list[str] = "model", ci_alpha: float = 0.05) -> pd.DataFrame:
    """Clean and robust accuracy per group of :func:`evaluate` rows, in percent, with two-sided
    (1 - ci_alpha) Clopper-Pearson intervals."""
    out = []
    for key, g in rows.groupby(by, sort=False):
        rec = dict(zip([by] if isinstance(by, str) else by, key if isinstance(key, tuple) else (key,)))
        n = len(g)
        for col, name in (("clean_correct", "clean"), ("robust", "robust")):
            k = int(g[col].sum())
            lo, hi = clopper_pearson(torch.tensor([k]), n, ci_alpha)
            rec.update({name: 100 * k / n, f"{name}_lo": 100 * float(lo), f"{name}_hi": 100 * float(hi)})
        rec.update(images=n, **{f"broken_by_{a}": int((g.broken_by == a).sum()) for a in ATTACKS})
        out.append(rec)
    return pd.DataFrame(out)


def worst_case(rows: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """RobustBench's worst case per (defense, norm, eps, image) both have: robust only where both left it robust."""
    key, cols = ["label", "norm", "eps", "example"], ["clean_correct", "robust", "broken_by"]
    b = rows[key + cols].merge(other[key + cols], on=key, suffixes=("", "_2"), validate="one_to_one").fillna(
        {"broken_by": "", "broken_by_2": ""})
    if b.empty:
        raise ValueError("the two evaluations share no (defense, norm, eps, image): run both at one budget on the same images")
    return b[key].assign(clean_correct=b.clean_correct & b.clean_correct_2, robust=b.robust & b.robust_2,
                         broken_by=b.broken_by.where(b.broken_by != "", b.broken_by_2))


def defense_models(study, names=DEFENSES, variant: str = "sem") -> dict[str, torch.nn.Module]:
    """The study's defended models by name: the SEM (its ``variant``), F, G, H, I and the
    trained baselines RSE and ADP."""
    unknown = [n for n in names if n not in DEFENSES]
    if unknown:
        raise ValueError(f"unknown defenses {unknown}; choose from {list(DEFENSES)}")
    d = study.defenses(variant)
    return {n: d.models[_DEFENDED[n]] if n in _DEFENDED else study.baseline(n) for n in names}


def study_rows(study, models: dict[str, torch.nn.Module], cfg: RobustConfig, progress: bool = True,
               executor: Executor | None = None, shards: list[slice] | None = None) -> pd.DataFrame:
    """:func:`evaluate` of every model (white-box: each attacks and judges itself) on the study's images, cached per
    shard; rows gain ``label`` (the model's name), ``eps``, ``norm``, ``steps``, ``eot`` (samples per step on the model
    itself: 1 for a deterministic one). ``executor``: blocks first run as its tasks (:func:`precompute`); ``shards``: only these."""
    if executor is not None:
        precompute(study, [(models, cfg)], executor, progress)
    labels = {id(m): label for label, m in models.items()}

    def compute(model, sl: slice, gen: torch.Generator) -> pd.DataFrame:
        x, y, _ = study.images(sl)
        clean = request_streams({"robust clean": labels[id(model)], "judge": asdict(cfg.judge),
                                 "study": study.cfg.curve_fields()}, study.ids[sl])  # the same for every budget
        return evaluate(model, model, x, y, cfg, gen, ids=study.ids[sl].numpy(), clean_generator=clean)

    key = lambda label: {"robust": label, "config": {**asdict(cfg), "attacks": list(cfg.attacks)},  # noqa: E731
                         "success": "confirmed by a second judgement; clean votes of their own"}
    rows = per_model(study, models, key, compute, f"robust accuracy {budget(cfg.norm, cfg.eps)}", progress, streams=True,
                     channels_last=cfg.channels_last, shards=shards)
    # curve columns as the claims ledger selects them: scenario = the defense, goal = the budget
    eot = rows.label.map({label: 1 if deterministic(m) else cfg.eot for label, m in models.items()})
    return rows.assign(eps=cfg.eps, norm=cfg.norm, steps=cfg.steps, eot=eot, scenario=rows.label, variant="sem",
                       attack="robust", goal=budget(cfg.norm, cfg.eps))


def precompute(study, jobs: list[tuple[dict[str, torch.nn.Module], RobustConfig]], executor: Executor | None,
               progress: bool = True) -> None:
    """Fill the cache of :func:`study_rows` for every ``(models, cfg)`` of ``jobs``: a task of the
    ``executor`` (a local pool or Ray) per job and block of image shards (:meth:`semlib.study.Study.blocks`),
    its defenses together as :func:`study_rows` runs them here, so the rows are the same; all jobs at
    once, the costliest first. Tasks rebuild the defenses by name (:func:`defense_models`), so only the
    study's own defenses go to the executor; others are left to :func:`study_rows`."""
    if executor is None or executor.serial:
        return
    own = lambda models: [n for n, m in models.items() if n in DEFENSES and m is defense_models(study, [n])[n]]  # noqa: E731
    longest_first = sorted(jobs, key=lambda job: -job[1].steps * job[1].eot)  # so no worker is left with the 800-step one
    spans = [slice(g[0].start, g[-1].stop) for g in study.blocks(study.shards())]
    tasks = {repr(t): t for t in [(study.recipe(), own(models), asdict(cfg), sl.start, sl.stop)
                                  for models, cfg in longest_first for sl in spans]}  # a job given twice runs once
    runner.run(shard_task, [t for t in tasks.values() if t[1]], executor, desc="robust accuracy blocks", progress=progress)


def shard_task(recipe: str, names: list[str], config: dict, start: int, stop: int) -> None:
    """The image shards in ``start..stop`` of :func:`study_rows` as a task of any process: computes what the cache lacks."""
    study = from_recipe(recipe)
    study_rows(study, defense_models(study, names), RobustConfig(**config), progress=False,
               shards=study.shards(stop, start))


def budget(norm: str, eps: float) -> str:
    """A budget as the claims plan names it: ``linf 8/255`` (Linf in 255ths when whole), ``l2 0.5``."""
    k = eps * 255
    return f"linf {k:.0f}/255" if norm == "linf" and abs(k - round(k)) < 1e-6 else f"{norm} {eps:g}"


def convergence(study, models: dict[str, torch.nn.Module], cfg: RobustConfig, steps: list[int], eots: list[int],
                progress: bool = True, executor: Executor | None = None,
                joint: list[tuple[int, int]] = (), plateau: tuple[int, int] | None = None) -> pd.DataFrame:
    """Per-image :func:`study_rows` against the attack's iterations (at ``cfg.eot``), against
    its EOT samples (at ``cfg.steps``) and, for each ``(steps, eot)`` of ``joint``, with both
    raised together (the strongest attacks: one axis at a time cannot show that their
    combination gains nothing) and, at ``plateau`` ``(S, E)``, doubling each (``plateau_steps``:
    S, 2S at E; ``plateau_eot``: E, 2E at S), with ``sweep`` and ``value`` (the iterations, the
    samples, or for ``joint`` the EOT passes per attack run, steps x eot; :func:`table` by
    ``["label", "sweep", "value"]`` gives robust accuracy per point); deterministic models have no
    EOT, joint or ``plateau_eot`` sweep (one pass is exact); ``executor`` as in :func:`study_rows`."""
    noisy = {k: m for k, m in models.items() if not deterministic(m)}
    points = [(sweep, int(v), models if sweep == "steps" else noisy, replace(cfg, **{sweep: int(v)}))
              for sweep, values in (("steps", steps), ("eot", eots)) for v in values]
    points += [("joint", int(s) * int(e), noisy, replace(cfg, steps=int(s), eot=int(e))) for s, e in joint]
    if plateau is not None:
        s, e = map(int, plateau)
        points += [("plateau_steps", k * s, models, replace(cfg, steps=k * s, eot=e)) for k in (1, 2)]
        points += [("plateau_eot", k * e, noisy, replace(cfg, steps=s, eot=k * e)) for k in (1, 2)]
    points = [p for p in points if p[2]]
    precompute(study, [(chosen, c) for _, _, chosen, c in points], executor, progress)
    return pd.concat([study_rows(study, chosen, c, progress).assign(sweep=sweep, value=v)
                      for sweep, v, chosen, c in points], ignore_index=True)
