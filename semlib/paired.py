"""Paired comparison of two defenses by their per-image minimal distortions: a range-free
statistic for the claims ledger.

``d_x[i, k]`` and ``d_y[i, k]`` are the smallest distortions at which the attack of panel ``k``
(attack x goal) succeeds on image ``i``; a cell where either defense fails the clean image (or
that either lacks) is left out: clean errors are a separate accuracy comparison. A success at eps
0 on an image a defense classifies correctly (a targeted vote already at alpha) counts as
``ceiling / 2**12``, below anything the search resolves. The estimate is the **geometric-mean
distortion ratio**

    R = exp(mean_i t_i),   t_i = mean_k log(d_y[i, k] / d_x[i, k]),

how many times more distortion Y needs than X (R > 1: X is the more vulnerable), with a 95%
percentile bootstrap interval over images (unadjusted) and Wilcoxon signed-rank p-values on the
``t_i`` (one value per image, so the panels of an image, which share it, count once). It needs no
eps range: only the order and ratio of the distortions matter.

**Censoring.** An image the search never broke (NaN) has a distortion in ``[ceiling, d_max]``:
at least the search's largest budget, at most the largest the pixel range allows (Linf 1, L2
``sqrt(3 * 32 * 32)``). Each comparison is computed twice, with every censored value of X at
one end and every censored value of Y at the other, in the two ways that make R smallest and
largest; a verdict must hold in both (its p-value is the larger of the two), and the estimate
shown is the one with censored values at the ceiling (what the search saw). When a hypothesis
is significant (Holm-adjusted, in the family of such p-values) as the search saw it but not at
both ends, the verdict is *not evaluable*: censoring decides it.

**Ties.** Distortions come from a binary search, so equal ones are common; Wilcoxon's test
leaves zero differences out (``zero_method="wilcox"``). With fewer than :data:`MIN_INFORMATIVE`
untied (or, for errors, discordant) pairs the direction of a ``>`` claim cannot be told, and
unless the pairs show equivalence the verdict is *not evaluable*. Ties still bound the ratio:
many tied pairs with a few small differences are equivalent.

**Verdicts** (``bound`` b > 1, declared before the run; level alpha after Holm's adjustment).
Each comparison contributes a *direction* test, two-sided (twice the smaller one-sided p), and
for ``>`` an *equivalence* test:

* ``X > Y`` (X more vulnerable, R > 1): *supported* if the direction test around R = 1 is
  significant with R > 1, *contradicted* if with R < 1; else *equivalent* if R's bootstrap
  interval at the adjusted level lies inside ``[1/b, b]`` (two one-sided bootstrap tests of the
  mean log ratio, the estimand shown); otherwise *inconclusive*.
* ``X <= Y`` (X no more vulnerable than Y, up to b: R < b): the direction test is around R = b:
  *supported* if significant with R < b, *contradicted* if with R > b; otherwise *inconclusive*.

**Power.** ``detectable`` is the smallest ratio a paired test of this n and spread detects with
80% power at level alpha / m (the strictest Holm step for a family of m tests), ``exp((z_{1-alpha/2m} +
z_{0.8}) * sd(t) / sqrt(n))``; ``n_needed`` the images it would take to detect ``b``; both NaN
when the pairs carry no spread (all tied, or one image).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom, norm, wilcoxon

SUPPORTED, CONTRADICTED, EQUIVALENT = "supported", "contradicted", "equivalent"
INCONCLUSIVE, NOT_EVALUABLE = "inconclusive", "not evaluable"
MIN_INFORMATIVE = 6  # untied pairs: the exact two-sided Wilcoxon p of 6 pairs can reach 2 / 2**6 = 0.031
D_MAX = {"linf": 1.0, "l2": math.sqrt(3 * 32 * 32)}  # the largest distortion in the pixel range [0, 1]
RELATIONS = (">", "<=")
FLOOR = 2.0 ** -12  # a success at eps 0 on a correctly classified image, as a fraction of the ceiling


@dataclass(frozen=True)
class Pairs:
    """The paired distortions of one comparison, ``[images, panels]``; NaN: censored; cells
    with a clean failure masked out (``valid``)."""

    d_x: np.ndarray
    d_y: np.ndarray
    valid: np.ndarray
    ceiling: float
    d_max: float

    @classmethod
    def from_distortions(cls, d_x, d_y, *, ceiling: float, norm_: str = "linf", correct_x=None,
                         correct_y=None) -> "Pairs":
        """``correct_x``/``correct_y``: clean correctness per cell (1/True, else a clean failure
        or a missing cell); without them a distortion of 0 marks a clean failure."""
        d_x, d_y = np.asarray(d_x, dtype=float), np.asarray(d_y, dtype=float)
        if d_x.shape != d_y.shape or d_x.ndim not in (1, 2):
            raise ValueError(f"paired distortions need two arrays of one shape, [images] or [images, panels], got "
                             f"{d_x.shape} and {d_y.shape}")
        if not (math.isfinite(ceiling) and ceiling > 0):
            raise ValueError(f"the search ceiling must be a finite number > 0, got {ceiling!r}")
        if norm_ not in D_MAX:
            raise ValueError(f"norm must be one of {sorted(D_MAX)}, got {norm_!r}")
        if (correct_x is None) != (correct_y is None):
            raise ValueError("pass clean correctness for both defenses or for neither")
        if d_x.ndim == 1:
            d_x, d_y = d_x[:, None], d_y[:, None]
        if np.nanmax(np.r_[d_x.ravel(), d_y.ravel(), 0.0]) > ceiling * (1 + 1e-6):
            raise ValueError(f"a distortion exceeds the search ceiling {ceiling:.6g}; pass the ceiling of the search "
                             f"that produced them (eps0 * 2 ** (search_steps - 1))")
        if correct_x is None:
            valid = ~((d_x <= 0) | (d_y <= 0))  # distortion 0: the clean image already fails (NaN passes)
        else:
            cx, cy = (np.asarray(c, dtype=float).reshape(d_x.shape) for c in (correct_x, correct_y))
            valid = (cx == 1) & (cy == 1)  # NaN (a missing cell) is not 1
            d_x, d_y = (np.where(d <= 0, ceiling * FLOOR, d) for d in (d_x, d_y))  # a success at eps 0
        keep = valid.any(1)
        return cls(d_x[keep], d_y[keep], valid[keep], float(ceiling), D_MAX[norm_])

    @property
    def n(self) -> int:
        """Images with at least one panel both defenses classify correctly at eps 0."""
        return len(self.d_x)

    def censored(self, which: str) -> int:
        return int((np.isnan(self.d_x if which == "x" else self.d_y) & self.valid).sum())

    def log_ratios(self, end: str) -> np.ndarray:
        """Per image, the mean over its panels of ``log(d_y / d_x)``, with censored values at
        ``end``: ``"seen"`` (both at the ceiling), ``"low"`` (the smallest R they allow) or
        ``"high"`` (the largest)."""
        c, top = self.ceiling, self.d_max
        x_fill, y_fill = {"seen": (c, c), "low": (top, c), "high": (c, top)}[end]
        x = np.where(self.valid, np.where(np.isnan(self.d_x), x_fill, self.d_x), 1.0)
        y = np.where(self.valid, np.where(np.isnan(self.d_y), y_fill, self.d_y), 1.0)
        return np.log(y / x).sum(1) / self.valid.sum(1)  # masked cells contribute log(1 / 1) = 0


def _wilcoxon(t: np.ndarray, shift: float, alternative: str) -> float:
    d = t - shift
    d = d[np.abs(d) > 1e-12]  # zero differences left out ("wilcox"), before scipy sees them: then small
    if len(d) == 0:           # untied samples get the exact distribution, not the normal approximation
        return 1.0
    return float(wilcoxon(d, alternative=alternative).pvalue)


def tests(t: np.ndarray, relation: str, bound: float, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """One-sided p-values of the hypotheses behind each verdict (see the module docstring)."""
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    if not (math.isfinite(bound) and bound > 1):
        raise ValueError(f"the equivalence bound is a ratio > 1 (e.g. 1.25), got {bound!r}")
    delta = math.log(bound)
    if relation == ">":
        boot = bootstrap_means(t, n_boot, seed) if len(t) else None
        equivalent = max(_share(boot <= -delta, n_boot), _share(boot >= delta, n_boot)) if len(t) else 1.0
        return {SUPPORTED: _wilcoxon(t, 0.0, "greater"), CONTRADICTED: _wilcoxon(t, 0.0, "less"), EQUIVALENT: equivalent}
    return {SUPPORTED: _wilcoxon(t, delta, "less"), CONTRADICTED: _wilcoxon(t, delta, "greater")}


def _share(mask: np.ndarray, n_boot: int) -> float:
    """A one-sided bootstrap p-value: the share of resamples on the wrong side (plus one)."""
    return float((np.sum(mask) + 1) / (n_boot + 1))


def bootstrap_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of the per-image ``values``."""
    return values[np.random.default_rng(seed).integers(0, len(values), size=(n_boot, len(values)))].mean(1)


def power(sd: float, n: int, bound: float, alpha: float = 0.05, m_tests: int = 1) -> tuple[float, float]:
    """(``detectable``, ``n_needed``) of a paired test of ``n`` images whose log ratios spread
    ``sd``, at 80% power and level alpha / m_tests; NaN without spread (see the module docstring)."""
    if not (n > 1 and sd == sd and sd > 0):
        return math.nan, math.nan
    z = norm.ppf(1 - alpha / (2 * m_tests)) + norm.ppf(0.8)
    return float(np.exp(z * sd / math.sqrt(n))), math.ceil((z * sd / math.log(bound)) ** 2)


def compare(pairs: Pairs, relation: str, bound: float, *, n_boot: int = 2000, seed: int = 0,
            m_tests: int = 1, alpha: float = 0.05) -> dict:
    """The estimate, its interval, the unadjusted p-values (the larger of the two censoring
    ends; ``family_seen``: as the search saw them) and the power figures of one comparison;
    :func:`decide` turns Holm-adjusted p-values into a verdict."""
    t = pairs.log_ratios("seen")
    informative = int(np.count_nonzero(np.abs(t) > 1e-12))
    ends = {end: tests(pairs.log_ratios(end), relation, bound, n_boot, seed) for end in ("seen", "low", "high")}
    p = {h: max(e[h] for e in ends.values()) for h in ends["low"]}  # a verdict must hold at both ends
    sd = float(t.std(ddof=1)) if pairs.n > 1 else math.nan
    detectable, n_needed = power(sd, pairs.n, bound, alpha, m_tests)
    out = {"n": pairs.n, "relation": relation, "informative": informative, "censored_x": pairs.censored("x"),
           "censored_y": pairs.censored("y"), "ratio": math.nan, "lo": math.nan, "hi": math.nan, "sd": sd,
           "detectable": detectable, "n_needed": n_needed, "p": p, "family": family(p),
           "family_seen": family(ends["seen"])}
    out["censoring_decides"] = censoring_decides(out["family"], out["family_seen"], alpha)
    if pairs.n == 0:
        return out
    lo, hi = np.quantile(bootstrap_means(t, n_boot, seed), [0.025, 0.975])
    out.update(ratio=float(np.exp(t.mean())), lo=float(np.exp(lo)), hi=float(np.exp(hi)))
    return out


def error_difference(err_x: np.ndarray, err_y: np.ndarray, relation: str, margin: float, *, n_boot: int = 2000,
                     seed: int = 0) -> dict:
    """Paired per-image error rates (each in [0, 1], e.g. a mean over panels): the mean of
    ``err_x - err_y`` with a bootstrap 95% interval and one-sided bootstrap p-values (the share
    of resamples on the wrong side). ``"<="``: *supported* is ``diff < margin`` (x is no worse
    than y up to the margin), *contradicted* ``diff > margin``. ``">"``: x errs more than y —
    *supported* ``diff > 0``, *contradicted* ``diff < 0``, *equivalent* ``|diff| < margin``.

    With fewer than :data:`MIN_INFORMATIVE` images that differ the bootstrap is far too bold
    (it sees no spread where no image differs: 4 identical images gave p = 0.0025 for
    equivalence), so there a p-value that says "less than the margin" is at least an exact
    bound (:func:`_few_differ`): 4 identical images give p 0.81, 400 give 1e-9."""
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    d = np.asarray(err_x, dtype=float) - np.asarray(err_y, dtype=float)
    boot = bootstrap_means(d, n_boot, seed)
    if relation == "<=":
        p = {SUPPORTED: max(_share(boot >= margin, n_boot), _few_differ(d, margin)),
             CONTRADICTED: _share(boot <= margin, n_boot)}
    else:
        p = {SUPPORTED: _share(boot <= 0, n_boot), CONTRADICTED: _share(boot >= 0, n_boot),
             EQUIVALENT: max(_share(boot >= margin, n_boot), _share(boot <= -margin, n_boot), _few_differ(d, margin))}
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return {"n": len(d), "relation": relation, "estimate": float(d.mean()), "lo": float(lo), "hi": float(hi), "p": p,
            "family": family(p), "family_seen": family(p),
            "informative": int(np.count_nonzero(d)), "censoring_decides": False, "detectable": np.nan,
            "n_needed": np.nan, "censored_x": 0, "censored_y": 0}


def _few_differ(d: np.ndarray, margin: float) -> float:
    """An exact p-value for ``|mean(d)| >= margin`` (``d_i`` in [-1, 1], independent images) when
    fewer than :data:`MIN_INFORMATIVE` images differ, else 0 (the bootstrap decides): the null
    needs ``P(d_i != 0) >= margin``, under which so few differing images come with probability
    at most ``Binomial(n, margin).cdf(differing)``."""
    k = int(np.count_nonzero(d))
    return float(binom.cdf(k, len(d), margin)) if k < MIN_INFORMATIVE else 0.0


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error rate), in the given order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def family(p: dict[str, float]) -> dict[str, float]:
    """The hypotheses a comparison puts into the ledger's Holm family: the two-sided direction
    test (from its two one-sided p-values) and, where there is one, the equivalence test."""
    out = {"direction": min(1.0, 2 * min(p[SUPPORTED], p[CONTRADICTED]))}
    if EQUIVALENT in p:
        out[EQUIVALENT] = p[EQUIVALENT]
    return out


def censoring_decides(p_adjusted: dict[str, float], p_adjusted_seen: dict[str, float], alpha: float = 0.05) -> bool:
    """Whether a hypothesis is significant as the search saw the censored pairs but not at both
    ends of their range."""
    return any(v < alpha <= p_adjusted[h] for h, v in p_adjusted_seen.items())


def decide(result: dict, p_adjusted: dict[str, float], alpha: float = 0.05,
           p_adjusted_seen: dict[str, float] | None = None) -> str:
    """The verdict of one comparison from its Holm-adjusted :func:`family` p-values (and those
    of its ``family_seen``, adjusted in their own family; default: ``result``'s unadjusted)."""
    told = result.get("relation") == "<=" or result["informative"] >= MIN_INFORMATIVE
    if p_adjusted["direction"] < alpha and told:
        return SUPPORTED if result["p"][SUPPORTED] < result["p"][CONTRADICTED] else CONTRADICTED
    if p_adjusted.get(EQUIVALENT, 1.0) < alpha:
        return EQUIVALENT
    seen = result.get("family_seen", {}) if p_adjusted_seen is None else p_adjusted_seen
    if censoring_decides(p_adjusted, seen, alpha) or not told:
        return NOT_EVALUABLE
    return INCONCLUSIVE
