"""Pure reductions of a study's per-image rows into the tables the notebooks show: ASR curves
with Clopper-Pearson bands, per-curve summaries, certified and clean Monte-Carlo accuracy."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd
import torch

from .curves import asr_curve
from .smoothing import clopper_pearson


def asr_table(rows: pd.DataFrame, eps_grid: np.ndarray, ci_alpha: float = 0.05) -> pd.DataFrame:
    """Tidy ASR curves: one row per (curve, eps) with asr and its Clopper-Pearson band."""
    keys = ["label", "scenario", "attack", "goal", "variant"]
    parts = [asr_curve(g.distortion, eps_grid, ci_alpha).assign(**dict(zip(keys, k)))
             for k, g in rows.groupby(keys, sort=False)]
    return pd.concat(parts, ignore_index=True)[keys + ["eps", "asr", "lo", "hi", "n"]]


def summary_table(rows: pd.DataFrame, eps_points: Iterable[float]) -> pd.DataFrame:
    """Per curve: ASR at each of ``eps_points``, median distortion (inf if under half succeed),
    clean Monte-Carlo accuracy and the compute spent."""
    keys = ["label", "attack", "goal"]
    out = []
    for k, g in rows.groupby(keys, sort=False):
        d = g.distortion.fillna(np.inf)
        rec = dict(zip(keys, k), images=len(g), clean_accuracy=float(g.clean_correct.mean()),
                   median_distortion=float(d.median()))
        rec.update({f"asr@{e:.4g}": float((d <= e).mean()) for e in eps_points})
        rec.update(gradients=int(g.gradients.sum()), queries=int(g.queries.sum()), judge_draws=int(g.judge_draws.sum()))
        out.append(rec)
    return pd.DataFrame(out)


def certified_accuracy(rows: pd.DataFrame, radii: np.ndarray, column: str = "radius") -> pd.DataFrame:
    """Certified accuracy at each radius: the fraction of images whose certified prediction is
    correct with a ``column`` (``radius``: noise space; ``radius_pixel``: pixels) >= r.
    Columns model, radius, accuracy."""
    return pd.DataFrame([{"model": label, "radius": float(r), "accuracy": float((g.correct & (g[column] >= r)).mean())}
                         for label, g in rows.groupby("label", sort=False) for r in radii])


def accuracy_table(rows: pd.DataFrame, ci_alpha: float = 0.05) -> pd.DataFrame:
    """Clean Monte-Carlo accuracy per model with a Clopper-Pearson band (from :func:`semlib.certification.clean_rows`)."""
    out = []
    for label, g in rows.groupby("label", sort=False):
        k = torch.tensor([int(g.clean_correct.sum())])
        lo, hi = clopper_pearson(k, len(g), ci_alpha)
        out.append({"model": label, "accuracy": float(k) / len(g), "lo": float(lo), "hi": float(hi), "images": len(g),
                    "mean_votes": float(g.judge_draws.mean())})
    return pd.DataFrame(out)
