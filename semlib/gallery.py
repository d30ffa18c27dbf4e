"""What robustness buys, to look at: for chosen images, the clean image and the adversarial one
each defense's curve found at its minimal distortion, and the perturbation amplified.

The adversarial images are not stored with the curves (only distortions are); they are found
again by rerunning each curve's eps search on the chosen images alone. Every random number of a
search is drawn per image (:mod:`semlib.streams`), so that is the search of the curve up to the
floating-point order of batched network calls (the curve's shard ran its images together): the
table puts the distortion found beside the curve's, so a difference is shown, not hidden.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from . import layout, shards
from .explore import Grid, curve_rows
from .study import CurveSpec, Study


def choose(rows: pd.DataFrame, specs: list[CurveSpec], n: int = 4) -> list[int]:
    """Test indices of up to ``n`` images that every curve of ``specs`` breaks at a distortion
    above 0, spread over the first curve's distortions (smallest to largest)."""
    broken = None
    for s in specs:
        part = _curve(rows, s)
        ok = part[np.isfinite(part) & (part > 0)]
        broken = ok if broken is None else broken[broken.index.isin(ok.index)]
    if broken is None or broken.empty or n < 1:
        return []
    ordered = broken.sort_values()
    picks = ordered.index[np.unique(np.linspace(0, len(ordered) - 1, min(n, len(ordered))).round().astype(int))]
    return sorted(int(p) for p in picks)


def _curve(rows: pd.DataFrame, s: CurveSpec) -> pd.Series:
    return rows[(rows.scenario == s.scenario) & (rows.attack == s.attack) & (rows.goal == s.goal)
                & (rows.variant == s.variant)].set_index("example").distortion


def adversarials(study: Study, spec: CurveSpec, examples: list[int]) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(clean images, adversarial images, distortions) of the curve ``spec`` on the test images
    ``examples``, each found by the curve's own search on that image alone."""
    ids = study.ids.tolist()
    xs, advs, dists = [], [], []
    if not examples:
        empty = torch.empty(0, *study.x.shape[1:])
        return empty, empty.clone(), np.zeros(0)
    for example in examples:
        pos = ids.index(example)
        sl = slice(pos, pos + 1)
        keep = torch.full_like(study.images(sl)[0], float("nan"))
        models, run = shards.search(study, spec, sl, keep=keep)
        with layout.channels_last_all(list(models), study.cfg.channels_last):
            rows = run()
        xs.append(study.images(sl)[0].cpu())
        advs.append(keep.cpu())
        dists.append(float(rows.distortion.iloc[0]))
    return torch.cat(xs), torch.cat(advs), np.asarray(dists)


def table(study: Study, rows: pd.DataFrame, specs: list[CurveSpec], n: int = 4
          ) -> tuple[pd.DataFrame, dict[str, torch.Tensor]]:
    """The gallery of up to ``n`` images (:func:`choose`) under each curve of ``specs``: one row
    per (image, curve) with the distortion found, the curve's, and the measured Linf size of the
    perturbation; and the images ``{"clean": ..., label: adversarial, ...}``."""
    examples = choose(rows, specs, n)
    out, images = [], {}
    for s in specs:
        curve = _curve(rows, s)
        x, adv, d = adversarials(study, s, examples)
        images["clean"], images[study.label(s)] = x, adv
        linf = (adv - x).abs().flatten(1).amax(1).numpy() if len(examples) else []
        out += [{"example": e, "label": study.label(s), "attack": s.attack, "goal": s.goal, "distortion": dd,
                 "curve_distortion": float(curve.loc[e]), "linf_measured": li,
                 "label_true": int(study.y[study.ids.tolist().index(e)])} for e, dd, li in zip(examples, d, linf)]
    return pd.DataFrame(out), images


def from_grid(study: Study, grid: Grid, specs: list[CurveSpec], n: int, executor=None
              ) -> tuple[pd.DataFrame, dict[str, torch.Tensor]]:
    """:func:`table` on the curves' rows from ``grid`` (computed and added when it lacks them);
    nothing is computed when ``n`` is 0."""
    if n < 1:
        return pd.DataFrame(), {}
    rows, _ = curve_rows(study, specs, grid, progress=False, executor=executor)
    return table(study, rows, specs, n)
