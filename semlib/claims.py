"""The claims ledger: each of the paper's claims as paired comparisons of two defenses on the
same images, judged by an analysis plan fixed before the run (``params/claims.yaml``: the
claims, their panels, the equivalence bound, the accuracy margin and the error rate).

**Robustness claims** compare per-image minimal distortions (:mod:`semlib.paired`): the
geometric-mean distortion ratio with a paired bootstrap interval, Wilcoxon signed-rank
p-values, censoring bounded by the pixel range; no eps range enters.

**Accuracy claims** compare clean Monte-Carlo errors image by image: ``X <= Y`` is the
non-inferiority claim that X's error exceeds Y's by less than the margin; the difference of
mean errors has a bootstrap interval over images, and one-sided bootstrap p-values (the share
of resamples on the wrong side of the margin).

**Multiplicity.** Every p-value behind any verdict of the ledger goes into one Holm adjustment.

A claim made of several comparisons is *supported* (*equivalent*) if all of them are,
*contradicted* if any is, *not evaluable* if any is and none contradicts, else *inconclusive*.
Curves are selected by what they compute (:class:`Curve`: scenario and SEM variant), never by
their display label.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import paired
from .paired import CONTRADICTED, EQUIVALENT, INCONCLUSIVE, NOT_EVALUABLE, SUPPORTED
from .settings import is_finite
from .yamlsafe import load_yaml

SCORES = ("distortion", "error", "robust", "strongest")
SOURCE_TABLE = {"distortion": "distortions", "error": "distortions", "robust": "robust_rows", "strongest": "strongest_rows"}
GATES = ("converged", "budget_converged", "plateau")  # the checklist's checks a claim's verdict may wait for


@dataclass(frozen=True)
class Curve:
    """A curve of a per-image table, selected by what it computes, never by its display label:
    its ``scenario`` (a Table-2 letter, ``RSE``/``ADP``/``SEM``; for clean-accuracy rows the
    model kind, e.g. ``submodel``) and its SEM ``variant``. ``variant=None`` takes every
    variant of the scenario, averaged per image (e.g. all smoothed sub-models)."""

    scenario: str
    variant: str | None = "sem"

    @classmethod
    def parse(cls, text: str) -> "Curve":
        """``"A"``, ``"A/sem_k68"`` or ``"submodel/*"`` (every variant)."""
        if not isinstance(text, str) or not text or text.count("/") > 1:
            raise ValueError(f"a curve is 'SCENARIO' or 'SCENARIO/VARIANT' (VARIANT * for all), got {text!r}")
        scenario, _, variant = text.partition("/")
        return cls(scenario, None if variant == "*" else variant or "sem")

    def select(self, rows: pd.DataFrame) -> pd.DataFrame:
        keep = rows.scenario == self.scenario
        return rows[keep if self.variant is None else keep & (rows.variant == self.variant)]

    def __str__(self) -> str:
        return self.scenario if self.variant == "sem" else f"{self.scenario}/{self.variant or '*'}"


def as_curve(c: Curve | str) -> Curve:
    return c if isinstance(c, Curve) else Curve.parse(c)


def read_rows(path: str | os.PathLike) -> pd.DataFrame:
    """A notebook's per-image table. Tables written before curves had a ``scenario`` column
    (the laptop outputs of 2026-11-26 and earlier) are read in today's shape: the column was
    called ``defense``; clean-accuracy rows had only a label."""
    rows = pd.read_csv(path).rename(columns={"defense": "scenario"})
    if "scenario" not in rows:
        single = rows.label.str.startswith("single smoothed ")
        rows["scenario"] = rows.label.where(~single, "submodel")
        rows["variant"] = rows.label.str.removeprefix("single smoothed ").where(single, "sem")
    return rows


@dataclass
class Claim:
    """A claim: comparisons ``(x, relation, y)`` of two curves on ``panels`` (attack, goal) of
    the per-image rows of notebook ``source``. ``score``: ``distortion`` (``x > y``: x is the more
    vulnerable; ``x <= y``: x is no more vulnerable, up to the plan's bound), ``error`` (clean
    Monte-Carlo error; ``x <= y``: x's error exceeds y's by less than the plan's margin) or
    ``robust`` (robust-accuracy errors at fixed budgets, panels ``[robust, "linf 8/255"]``;
    ``x > y``: x is robust on fewer images; equivalent within the margin) or ``strongest`` (the
    same on 06b's rows at the plateau's budget (``STRONGEST``), each defense at its strongest attack there,
    :func:`strongest`; panel ``[strongest, plateau budget]``). ``converged``: the defenses whose
    attack must pass each checklist check of ``gate`` for the verdict to stand (:mod:`semlib.gate`)."""

    key: str
    text: str
    figure: str
    source: str
    comparisons: list[tuple[Curve, str, Curve]]
    panels: list[tuple[str, str]]
    score: str = "distortion"
    notes: str = ""
    converged: list[str] = field(default_factory=list)
    gate: list[str] = field(default_factory=lambda: ["converged", "budget_converged"])

    def __post_init__(self) -> None:
        if self.score not in SCORES or not set(self.gate) <= set(GATES) or not self.gate:
            raise ValueError(f"claim {self.key}: score must be one of {SCORES} and gate some of {GATES}, got "
                             f"{self.score!r} and {self.gate!r}")
        self.comparisons = [(as_curve(x), rel, as_curve(y)) for x, rel, y in self.comparisons]
        for _, rel, _ in self.comparisons:
            if rel not in paired.RELATIONS or (self.score == "error" and rel != "<="):  # robust: both
                raise ValueError(f"claim {self.key}: relation must be one of {paired.RELATIONS} ('<=' for an "
                                 f"accuracy claim), got {rel!r}")
        self.panels = [tuple(p) for p in self.panels]
        if not self.panels or any(len(p) != 2 for p in self.panels):
            raise ValueError(f"claim {self.key}: panels must be a non-empty list of [attack, goal], got {self.panels}")


@dataclass
class Plan:
    """The analysis plan (``params/claims.yaml``), fixed before a run."""

    claims: list[Claim]
    alpha: float = 0.05  # family-wise error rate of the whole ledger (Holm)
    bound: float = 1.25  # distortion ratios in [1/bound, bound] are equivalent
    accuracy_margin: float = 0.05  # accuracy differences below it do not matter
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "Plan":
        raw = load_yaml(Path(path))
        if not isinstance(raw, dict) or not isinstance(raw.get("claims"), list):
            raise ValueError(f"{path}: the analysis plan is a mapping with a 'claims' list")
        unknown = set(raw) - {"claims", "alpha", "bound", "accuracy_margin", "notes"}
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
        try:
            claims = [Claim(**c) for c in raw["claims"]]
        except TypeError as e:
            raise ValueError(f"{path}: a claim has a missing or unknown field ({e})") from None
        plan = cls(claims, **{k: v for k, v in raw.items() if k != "claims"})
        if not (is_finite(plan.alpha) and 0 < plan.alpha < 1 and is_finite(plan.bound) and plan.bound > 1
                and is_finite(plan.accuracy_margin) and 0 <= plan.accuracy_margin < 1):
            raise ValueError(f"{path}: need 0 < alpha < 1, bound > 1 and 0 <= accuracy_margin < 1, got "
                             f"{plan.alpha!r}, {plan.bound!r}, {plan.accuracy_margin!r}")
        if len({c.key for c in claims}) != len(claims):
            raise ValueError(f"{path}: claim keys must be unique")
        return plan


def strongest(rows: pd.DataFrame) -> pd.DataFrame:
    """06b's robust rows at each defense's strongest attack, as panel ``(strongest, plateau budget)``: its
    largest joint point (EOT passes per run), or without one (deterministic) its most iterations."""
    keep = [g[g.sweep == ("joint" if (g.sweep == "joint").any() else "steps")] for _, g in rows.groupby("label", sort=False)]
    return pd.concat([g[g.value == g.value.max()] for g in keep], ignore_index=True).assign(attack="strongest",
                                                                                         goal="plateau budget")


def panel_table(rows: pd.DataFrame, curve: Curve, panels: list[tuple[str, str]],
                value: str | list[str]) -> tuple[pd.DataFrame, list[str]]:
    """``value`` per image (index) and panel (columns; under each value's name for a list) of ``curve``,
    averaged over its variants if it takes several; and the labels of the curves it averages."""
    keep = curve.select(rows)
    keep = keep[keep[["attack", "goal"]].apply(tuple, axis=1).isin(panels)]
    if keep.empty:
        raise ValueError(f"no rows for curve {str(curve)!r} on panels {panels}; run the notebook that computes it")
    table = keep.pivot_table(index="example", columns=["attack", "goal"], values=value, aggfunc="mean", dropna=False)
    return table, sorted(keep.label.unique())


def _name(labels: list[str], curve: Curve) -> str:
    return labels[0] if len(labels) == 1 else f"{os.path.commonprefix(labels).strip() or curve.scenario} " \
                                              f"(mean of {len(labels)})"


def distortion_pairs(rows: pd.DataFrame, x: Curve | str, y: Curve | str, panels: list[tuple[str, str]], *,
                     ceiling: float, norm: str = "linf") -> tuple[paired.Pairs, str, str]:
    """The paired distortions of ``x`` and ``y`` on the images and panels both have."""
    x, y = as_curve(x), as_curve(y)
    if (x.variant is None) or (y.variant is None):
        raise ValueError("a distortion comparison takes one curve on each side (a variant, not '*')")
    (tx, lx), (ty, ly) = (panel_table(rows.assign(clean_correct=rows.clean_correct.astype(float)), c, panels,
                                      ["distortion", "clean_correct"]) for c in (x, y))  # NaN where a cell is missing
    cols = [c for c in tx["distortion"].columns if c in ty["distortion"].columns]
    both = tx.index.intersection(ty.index)
    if not cols or both.empty:
        raise ValueError(f"curves {x} and {y} share no images on {panels}")
    (dx, cx), (dy, cy) = ([t[v].reindex(index=both, columns=cols).to_numpy() for v in ("distortion", "clean_correct")]
                          for t in (tx, ty))
    pairs = paired.Pairs.from_distortions(dx, dy, ceiling=ceiling, norm_=norm, correct_x=cx, correct_y=cy)
    return pairs, _name(lx, x), _name(ly, y)


def accuracy_comparison(rows: pd.DataFrame, x: Curve | str, y: Curve | str, panels: list[tuple[str, str]], *,
                        margin: float, relation: str = "<=", value: str = "clean_correct", n_boot: int = 2000,
                        seed: int = 0) -> dict:
    """Paired errors (``1 - value`` per image, averaged over panels) of ``x`` and ``y`` on the
    images both have (:func:`semlib.paired.error_difference`; ``y`` may average several curves):
    clean Monte-Carlo errors, or robust-accuracy errors (``value="robust"``)."""
    x, y = as_curve(x), as_curve(y)
    (tx, lx), (ty, ly) = (panel_table(rows, c, panels, value) for c in (x, y))
    both = tx.index.intersection(ty.index)
    if both.empty:
        raise ValueError(f"curves {x} and {y} share no images on {panels}")
    err = [1 - t.loc[both].astype(float).mean(axis=1).to_numpy() for t in (tx, ty)]
    return {"x": _name(lx, x), "y": _name(ly, y),
            **paired.error_difference(err[0], err[1], relation, margin, n_boot=n_boot, seed=seed)}


def combine(verdicts: list[str]) -> str:
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    for v in (SUPPORTED, EQUIVALENT):
        if all(u == v for u in verdicts):
            return v
    return NOT_EVALUABLE if NOT_EVALUABLE in verdicts else INCONCLUSIVE


def _describe(r: dict, score: str) -> str:
    what = f"{r['y']}/{r['x']} distortion ratio {r['estimate']:.2f}" if score == "distortion" else \
        f"{'' if score == 'error' else 'robust '}error {r['x']} - {r['y']} {r['estimate']:+.3f}"
    lo, hi = (f"{r['lo']:.2f}", f"{r['hi']:.2f}") if score == "distortion" else (f"{r['lo']:+.3f}", f"{r['hi']:+.3f}")
    return f"{r['x']} {r['relation']} {r['y']}: {what} [{lo}, {hi}], n {r['n']} -> {r['verdict']}"


def ledger(outputs: str | os.PathLike, preset: str, plan: Plan, *, ceiling: float, norm: str = "linf",
           n_boot: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Judge every claim of ``plan`` from ``<outputs>/<source>/<preset>/tab_distortions.csv``;
    ``ceiling``: the eps search's largest budget (censoring), ``norm`` its norm.

    Returns (one row per claim, one row per comparison). A claim whose source notebook has not
    run is reported as ``not computed``, never silently dropped."""
    outputs = Path(outputs)
    rows_by_source: dict[tuple[str, str], pd.DataFrame | None] = {}
    results: list[tuple[Claim, dict]] = []
    for c in plan.claims:
        table = (c.source, SOURCE_TABLE[c.score])
        if table not in rows_by_source:
            path = outputs / c.source / preset / f"tab_{table[1]}.csv"
            rows_by_source[table] = read_rows(path) if path.is_file() else None
        rows = rows_by_source[table]
        rows = strongest(rows) if c.score == "strongest" and rows is not None else rows
        for x, rel, y in c.comparisons if rows is not None else []:
            if c.score != "distortion":
                r = accuracy_comparison(rows, x, y, c.panels, margin=plan.accuracy_margin, relation=rel,
                                        value="clean_correct" if c.score == "error" else "robust", n_boot=n_boot,
                                        seed=seed)
            else:
                pairs, x_name, y_name = distortion_pairs(rows, x, y, c.panels, ceiling=ceiling, norm=norm)
                r = paired.compare(pairs, rel, plan.bound, n_boot=n_boot, seed=seed, alpha=plan.alpha)
                r.update(x=x_name, y=y_name, estimate=r.pop("ratio"))
            results.append((c, {**r, "relation": rel}))
    m_tests = sum(len(r["family"]) for _, r in results)
    for which in ("family", "family_seen"):  # Holm over the ledger; the search's view in a family of its own
        flat = [(i, h, p) for i, (_, r) in enumerate(results) for h, p in r[which].items()]
        for (i, h, _), p_adj in zip(flat, paired.holm([p for _, _, p in flat])):
            results[i][1].setdefault(f"p_holm_{which}", {})[h] = p_adj
    details = []
    for c, r in results:
        r["p_holm"], seen = r.pop("p_holm_family", {}), r.pop("p_holm_family_seen", {})
        r["verdict"] = paired.decide(r, r["p_holm"], plan.alpha, seen)
        r["censoring_decides"] = paired.censoring_decides(r["p_holm"], seen, plan.alpha)
        if "sd" in r:  # power at the strictest step of the ledger's Holm family
            r["detectable"], r["n_needed"] = paired.power(r["sd"], r["n"], plan.bound, plan.alpha, m_tests)
        details.append({"claim": c.key, "score": c.score,
                        **{k: v for k, v in r.items() if k not in ("p", "family", "family_seen", "p_holm")},
                        **{f"p_{h}": v for h, v in r["family"].items()},
                        **{f"p_holm_{h}": v for h, v in r["p_holm"].items()}})
    ledger_rows = []
    for c in plan.claims:
        mine = [r for claim, r in results if claim is c]
        if rows_by_source[c.source, SOURCE_TABLE[c.score]] is None:
            ledger_rows.append({"claim": c.key, "text": c.text, "figure": c.figure, "source": c.source,
                                "verdict": "not computed", "comparisons": "", "images": 0,
                                "notes": f"run notebooks/{c.source}.ipynb on {preset} first"})
            continue
        ledger_rows.append({"claim": c.key, "text": c.text, "figure": c.figure, "source": c.source,
                            "verdict": combine([r["verdict"] for r in mine]),
                            "comparisons": "; ".join(_describe(r, c.score) for r in mine),
                            "images": min(r["n"] for r in mine),
                            "detectable": _largest([r["detectable"] for r in mine]), "notes": c.notes})
    return pd.DataFrame(ledger_rows), pd.DataFrame(details)


def _largest(values: list[float]) -> float:
    known = [v for v in values if v == v]
    return max(known) if known else math.nan


def markdown(ledger_df: pd.DataFrame) -> str:
    """The ledger as a Markdown table (for the README and closing notes)."""
    lines = ["| claim | verdict | evidence (estimate [95% CI, unadjusted], n) | smallest ratio detectable |", "|---|---|---|---|"]
    for r in ledger_df.itertuples():
        det = getattr(r, "detectable", float("nan"))
        lines.append(f"| {r.text} | **{r.verdict}** | {r.comparisons} | {det:.2f} |" if det == det else
                     f"| {r.text} | **{r.verdict}** | {r.comparisons} | – |")
    return "\n".join(lines)
