"""The claims ledger: each of the paper's claims as a paired comparison of two curves (or two
accuracies) on the same images, with a verdict from a cluster-bootstrap confidence interval.

**Score.** For a curve and an image with minimal successful distortion ``d`` (NaN: never
successful), the image's *success area* on ``[0, eps_hi]`` is ``1 - min(d, eps_hi) / eps_hi``
(1 if the clean image already fails, 0 if the attack never succeeds within ``eps_hi``). Its
mean over images is the area under the ASR curve on ``[0, eps_hi]`` divided by ``eps_hi``: the
average ASR over that eps range. For accuracy claims the score is the clean Monte-Carlo error.

**Difference.** ``delta = mean score(X) - mean score(Y)`` over the panels named (attack x
goal) and the images, with a 95% percentile interval from a bootstrap that resamples images
(all panels of an image together, since they share it).

**Verdicts** (``margin``: the smallest difference that matters):

* ``X > Y`` (X more vulnerable than Y): *supported* if the interval lies above 0; *not
  supported* if it lies below ``margin`` (a difference that matters is ruled out); otherwise
  *inconclusive*.
* ``X <= Y`` (X does not exceed Y by a difference that matters): *supported* if the interval
  lies below ``margin``; *not supported* if it lies above 0; otherwise *inconclusive*.

A claim made of several comparisons is supported if all are, not supported if any is not,
and inconclusive otherwise.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .smoothing import clopper_pearson

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"


def success_area(distortion: pd.Series | np.ndarray, eps_hi: float) -> np.ndarray:
    d = np.nan_to_num(np.asarray(distortion, dtype=float), nan=np.inf)
    return 1.0 - np.minimum(d, eps_hi) / eps_hi


@dataclass(frozen=True)
class Curve:
    """A curve of a per-image table, selected by what it computes, never by its display label:
    its ``scenario`` (a Table-2 letter, ``RSE``/``ADP``/``SEM``; for clean-accuracy rows the
    model kind, e.g. ``submodel``) and its SEM ``variant``. ``variant=None`` takes every
    variant of the scenario, averaged per image (e.g. all smoothed sub-models)."""

    scenario: str
    variant: str | None = "sem"

    def select(self, rows: pd.DataFrame) -> pd.DataFrame:
        keep = rows.scenario == self.scenario
        return rows[keep if self.variant is None else keep & (rows.variant == self.variant)]

    def __str__(self) -> str:
        return self.scenario if self.variant in ("sem", None) else f"{self.scenario}[{self.variant}]"


def as_curve(c: Curve | str) -> Curve:
    return c if isinstance(c, Curve) else Curve(c)


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


def _scores(rows: pd.DataFrame, curve: Curve, panels: list[tuple[str, str]], eps_hi: float, score: str
            ) -> tuple[pd.Series, list[str]]:
    """Per (attack, goal, example) score of ``curve`` (the mean over its variants if it takes
    several) and the labels of the curves it averages."""
    keep = curve.select(rows)
    keep = keep[keep[["attack", "goal"]].apply(tuple, axis=1).isin(panels)]
    if keep.empty:
        raise ValueError(f"no rows for curve {str(curve)!r} on panels {panels}; run the notebook that computes it")
    if score == "asr":
        values = success_area(keep.distortion, eps_hi)
    elif score == "error":
        values = 1.0 - keep.clean_correct.astype(float).to_numpy()
    else:
        raise ValueError(f"unknown score {score!r}")
    per = pd.Series(values, index=pd.MultiIndex.from_frame(keep[["attack", "goal", "example"]]))
    return per.groupby(level=[0, 1, 2]).mean(), sorted(keep.label.unique())


def paired_difference(rows: pd.DataFrame, x: Curve | str, y: Curve | str, panels: list[tuple[str, str]], *,
                      eps_hi: float, score: str = "asr", n_boot: int = 2000, seed: int = 0) -> dict:
    """``mean score(x) - mean score(y)`` with a 95% cluster-bootstrap interval over images.
    A curve that takes several variants (``Curve(scenario, None)``) is their per-image mean."""
    (sx, x_labels), (sy, ys) = (_scores(rows, as_curve(c), panels, eps_hi, score) for c in (x, y))
    x_name = ",".join(x_labels)
    y_name = ys[0] if len(ys) == 1 else f"{os.path.commonprefix(ys).strip() or as_curve(y).scenario} (mean of {len(ys)})"
    both = pd.concat([sx.rename("x"), sy.rename("y")], axis=1, join="inner")
    if both.empty:
        raise ValueError(f"curves {x_name!r} and {ys} share no images on {panels}")
    per_image = (both.x - both.y).groupby(level="example").sum()  # a cluster: every panel of an image
    counts = (both.x - both.y).groupby(level="example").size()
    diff = float(per_image.sum() / counts.sum())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(per_image), size=(n_boot, len(per_image)))
    boot = per_image.to_numpy()[idx].sum(1) / counts.to_numpy()[idx].sum(1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    return {"x": x_name, "y": y_name, "y_curves": ",".join(ys), "diff": diff, "lo": float(lo), "hi": float(hi),
            "x_mean": float(both.x.mean()), "y_mean": float(both.y.mean()), "images": int(len(per_image)),
            "panels": len(set(p for p in both.index.droplevel(2)))}


def verdict(lo: float, hi: float, relation: str, margin: float) -> str:
    if relation == ">":
        return SUPPORTED if lo > 0 else NOT_SUPPORTED if hi < margin else INCONCLUSIVE
    if relation == "<=":
        return SUPPORTED if hi < margin else NOT_SUPPORTED if lo > 0 else INCONCLUSIVE
    raise ValueError(f"relation must be '>' or '<=', got {relation!r}")


def combine(verdicts: list[str]) -> str:
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return NOT_SUPPORTED if NOT_SUPPORTED in verdicts else INCONCLUSIVE


@dataclass
class Claim:
    """A claim: comparisons ``(x, relation, y)`` of curves (:class:`Curve`; a string is a
    scenario of variant ``sem``) on ``panels`` from ``source`` (a notebook's per-image rows),
    over eps in [0, ``eps_hi``] (``None``: the study's eps_max)."""

    key: str
    text: str
    figure: str
    source: str
    comparisons: list[tuple[Curve | str, str, Curve | str]]
    panels: list[tuple[str, str]]
    score: str = "asr"
    eps_hi: float | None = None
    notes: str = ""
    results: list[dict] = field(default_factory=list)

    def judge(self, rows: pd.DataFrame, eps_max: float, margin: float, seed: int = 0, n_boot: int = 2000) -> dict:
        eps_hi = self.eps_hi or eps_max
        self.results = []
        for x, rel, y in self.comparisons:
            r = paired_difference(rows, x, y, self.panels, eps_hi=eps_hi, score=self.score, seed=seed, n_boot=n_boot)
            r.update(relation=rel, verdict=verdict(r["lo"], r["hi"], rel, margin))
            self.results.append(r)
        return {"claim": self.key, "text": self.text, "figure": self.figure, "source": self.source,
                "verdict": combine([r["verdict"] for r in self.results]), "eps_hi": eps_hi, "margin": margin,
                "comparisons": "; ".join(f"{r['x']} {r['relation']} {r['y']}: {r['diff']:+.3f} "
                                         f"[{r['lo']:+.3f}, {r['hi']:+.3f}] -> {r['verdict']}" for r in self.results),
                "images": min(r["images"] for r in self.results), "notes": self.notes}


def paper_claims(eps_small: float) -> list[Claim]:
    """The ledger's claims, each tied to the notebook whose curves decide it."""
    wb = [(a, g) for g in ("untargeted", "targeted") for a in ("bim", "mim", "pgd")]
    wb_u = [(a, "untargeted") for a in ("bim", "mim", "pgd")]
    q = [(a, g) for g in ("untargeted", "targeted") for a in ("nes", "spsa")]
    return [
        Claim("H_vs_I", "the plain ensemble (H) is more vulnerable than a single model (I) under white-box attacks",
              "fig4_5", "03_whitebox_transfer", [("H", ">", "I")], wb),
        Claim("F_vs_G", "the ensemble-smoothed model (F) is more robust than a single smoothed model (G)",
              "fig4_5", "03_whitebox_transfer", [("G", ">", "F")], wb),
        Claim("B_weakest", "attacker B is the weakest of A-D",
              "fig4_5", "03_whitebox_transfer", [("A", ">", "B"), ("C", ">", "B"), ("D", ">", "B")], wb),
        Claim("A_vs_F_small_eps", "under the strongest attacker (A) the SEM does not exceed the ensemble-smoothed "
              "model's ASR at small eps, untargeted", "fig4_5", "03_whitebox_transfer", [("A", "<=", "F")], wb_u,
              eps_hi=eps_small),
        Claim("K68_vs_K14", "a SEM with K 6..8 is more vulnerable than one with K 1..4 (attacker A)",
              "fig7_8", "05_ensemble_strategy", [(Curve("A", "sem_k68"), ">", "A")], wb),
        Claim("WRN_vs_hetero", "the single-architecture SEM (WRN, 7 sigmas) is more vulnerable than the "
              "heterogeneous SEM (attacker A)", "fig7_8", "05_ensemble_strategy", [(Curve("A", "sem_wrn"), ">", "A")], wb),
        Claim("clean_accuracy", "the SEM's clean Monte-Carlo accuracy is at least that of single smoothed models",
              "certify", "06_certify_sem", [("SEM", "<=", Curve("submodel", None))], [("clean", "untargeted")], score="error"),
        Claim("query_E_vs_J", "under NES / SPSA the SEM (E) is no more robust than the ensemble-smoothed model (J)",
              "fig6", "04_query_blackbox", [("J", "<=", "E")], q),
        Claim("adaptive", "the SEM's advantage survives an adaptive attacker (APGD with EOT over draws and noise): "
              "its ASR stays below F's and G's", "adaptive", "06b_adaptive",
              [("F", ">", "SEM"), ("G", ">", "SEM")], [("apgd", "untargeted")]),
    ]


def ledger(outputs: str | os.PathLike, preset: str, claim_list: list[Claim], *, eps_max: float, margin: float,
           n_boot: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Judge every claim from ``<outputs>/<source>/<preset>/tab_distortions.csv``.

    Returns (one row per claim, one row per comparison). A claim whose source notebook has not
    run is reported as ``not computed``, never silently dropped."""
    outputs = Path(outputs)
    rows_by_source: dict[str, pd.DataFrame | None] = {}
    ledger_rows, details = [], []
    for c in claim_list:
        if c.source not in rows_by_source:
            path = outputs / c.source / preset / "tab_distortions.csv"
            rows_by_source[c.source] = read_rows(path) if path.is_file() else None
        rows = rows_by_source[c.source]
        if rows is None:
            ledger_rows.append({"claim": c.key, "text": c.text, "figure": c.figure, "source": c.source,
                                "verdict": "not computed", "comparisons": "", "images": 0,
                                "notes": f"run notebooks/{c.source}.ipynb on {preset} first"})
            continue
        ledger_rows.append(c.judge(rows, eps_max, margin, seed, n_boot))
        for r in c.results:
            details.append({"claim": c.key, **r})
    return pd.DataFrame(ledger_rows), pd.DataFrame(details)


def markdown(ledger_df: pd.DataFrame) -> str:
    """The ledger as a Markdown table (for the README and closing notes)."""
    lines = ["| claim | verdict | evidence (difference in mean ASR [95% CI]) | images |", "|---|---|---|---|"]
    for r in ledger_df.itertuples():
        lines.append(f"| {r.text} | **{r.verdict}** | {r.comparisons} | {r.images} |")
    return "\n".join(lines)


def noise_space_finding(recipes_json: str | os.PathLike, paper_aca: float = 0.8015, arch: str = "resnet18") -> dict:
    """The paper's open question — are its sigmas in pixel units? — from the recipe benchmark
    (``benchmarks/results/zoo_recipes.json``: ACA at sigma 1.5 with pixel-space and with
    normalized-space noise, same model and fine-tuning). *Not supported* when the pixel-space
    ACA's 95% interval lies below the normalized-space one and below the paper's Table-1 value
    (``paper_aca``, ResNet18 at sigma 1.5): only noise after normalization comes near the paper."""
    row = next(r for r in json.loads(Path(recipes_json).read_text())["noise_space"] if r["arch"] == arch)
    n = 100
    (p_lo, p_hi), (n_lo, n_hi) = [[float(v) for v in clopper_pearson(torch.tensor([round(row[k] * n)]), n)]
                                  for k in ("pixel_aca", "normalized_aca")]
    separated = p_hi < n_lo and p_hi < paper_aca
    verdict_ = NOT_SUPPORTED if separated else INCONCLUSIVE
    return {"claim": "noise_space", "figure": "table1", "source": "benchmarks/bench_zoo_recipes.py",
            "text": "the paper's sigmas are in pixel units (Table 1's ~80% ACA at sigma 1.5 is reachable with pixel-space noise)",
            "verdict": verdict_, "images": n, "eps_hi": None, "margin": None,
            "comparisons": (f"{arch} ACA at sigma 1.5: pixel {row['pixel_aca']:.2f} [{p_lo:.2f}, {p_hi:.2f}], "
                            f"normalized {row['normalized_aca']:.2f} [{n_lo:.2f}, {n_hi:.2f}], paper {paper_aca:.2f}"),
            "notes": "laptop-scale models fine-tuned 1 epoch; the paper's full-size models are stronger, so only the "
                     "gap between the two noise spaces is evidence"}
