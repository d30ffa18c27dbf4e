"""Interactive exploration (notebook 08): a SEM of the user's choosing — K range, sigmas,
architectures — under one attack, beside the ensemble-smoothed (F) and single smoothed (G)
contrasts. Pure functions of a :class:`Settings`; the widgets in :mod:`semlib.widgets` only
collect the settings and show what these return.

Answers come from a :class:`Grid` first: the per-image rows the preset's notebooks already
computed and committed (``tab_distortions.csv`` of 02-06b: the SEM at K 1..4, K 6..8 and the WRN
collection under every attack and goal, and the contrasts) plus the settings notebook 08 adds
(``tab_grid.csv``: other K ranges and sigma subsets), so a redraw needs no attack. A setting
outside the grid is computed (with a progress bar), cached by the study and added to the grid.
"""
from __future__ import annotations

import ast
import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from .outputs import zoo_digest
from .runner import Executor
from .study import QUERY_ATTACKS, CurveSpec, Study, StudyConfig, asr_table

CONTRAST = {"query": ("J", "K"), "gradient": ("F", "G")}
SOURCES = ("02_baselines", "03_whitebox_transfer", "04_query_blackbox", "05_ensemble_strategy", "06b_adaptive")
KEY = ["scenario", "attack", "goal", "variant"]


@dataclass
class Settings:
    k_range: tuple[int, int] = (1, 4)
    sigmas: tuple[float, ...] = (0.0, 0.25)
    archs: tuple[str, ...] = ()  # empty: every architecture of the zoo
    attack: str = "bim"
    goal: str = "untargeted"
    n_images: int = 4

    def name(self) -> str:
        archs = ",".join(self.archs) if self.archs else "all"
        sig = ",".join(f"{s:g}" for s in self.sigmas)
        return f"K{self.k_range[0]}-{self.k_range[1]} s{sig} {archs}"


@dataclass
class Result:
    rows: pd.DataFrame
    curves: pd.DataFrame
    accuracy: pd.DataFrame  # clean Monte-Carlo accuracy per curve
    seconds: float
    members: list[str] = field(default_factory=list)
    source: str = "computed"  # "grid": every curve came from the grid, no attack ran


def members(study: Study, settings: Settings) -> list[str]:
    """The admitted sub-models with the chosen sigmas and architectures."""
    t = study.table[study.table.name.isin(study.collection("sem"))]
    t = t[t.sigma.isin([float(s) for s in settings.sigmas])]
    if settings.archs:
        t = t[t.arch.isin(settings.archs)]
    if t.empty:
        raise ValueError(f"no admitted sub-model has sigma in {list(settings.sigmas)} and architecture in "
                         f"{list(settings.archs) or 'any'}; widen the choice")
    return t.name.tolist()


def variant_for(study: Study, settings: Settings) -> str:
    """The study's own SEM variant when the settings choose exactly its members and K (so the
    study's curves answer), else a custom variant registered for them."""
    names = members(study, settings)
    for v in ("sem", "sem_k68"):
        if sorted(names) == sorted(study.collection(v)) and tuple(settings.k_range) == study.variant(v).k_range(study.cfg):
            return v
    return study.add_variant(settings.name(), names, settings.k_range)


def curve_specs(study: Study, settings: Settings) -> list[CurveSpec]:
    """The chosen SEM's curve (attacker A, or E for NES / SPSA) and its two contrasts."""
    query = settings.attack in QUERY_ATTACKS
    sem = CurveSpec("E" if query else "A", settings.attack, settings.goal, variant_for(study, settings))
    return [sem] + [CurveSpec(c, settings.attack, settings.goal) for c in CONTRAST["query" if query else "gradient"]]


def _same_study(record: dict, study: Study) -> bool:
    """Whether a run (its ``metrics.json``) computed the curves ``study`` would: the same zoo
    weights (the digest of its cards; a run that recorded none is another), threshold and
    settings other than presentation and layout."""
    try:
        params = record.get("params", {})
        params = ast.literal_eval(params) if isinstance(params, str) else params
        cfg = StudyConfig.from_dict(params.get("STUDY") or {})
    except (ValueError, SyntaxError, TypeError, AttributeError):
        return False
    if record.get("zoo_sha256") is None or record["zoo_sha256"] != zoo_digest(study.zoo_dir):
        return False
    ignore = set(StudyConfig._presentation) | set(StudyConfig._computation) | set(StudyConfig._speed)
    same = all(getattr(cfg, f.name) == getattr(study.cfg, f.name) for f in fields(StudyConfig) if f.name not in ignore)
    return same and (params.get("ZOO") or params.get("PRESET")) == study.spec.name and \
        params.get("THRESHOLD") == study.threshold


class Grid:
    """Per-image rows of curves already computed, looked up by (scenario, attack, goal, variant)."""

    def __init__(self, rows: pd.DataFrame | None = None):
        self.rows = pd.DataFrame(columns=[*KEY, "example"]) if rows is None else rows
        self._index()

    def _index(self) -> None:
        self._parts = {k: g for k, g in self.rows.groupby(KEY, sort=False)} if len(self.rows) else {}

    @classmethod
    def from_outputs(cls, root: str | Path, preset: str, study: Study) -> tuple["Grid", list[str]]:
        """The grid of ``outputs/*/<preset>/`` (02-06b, and 08's ``tab_grid.csv``) whose runs match
        ``study``; returns it and the tables left out as stale (other zoo weights, threshold or STUDY)."""
        parts, stale = [], []
        for nb, table in [(nb, "distortions") for nb in SOURCES] + [("08_explore", "grid")]:
            folder = Path(root) / "outputs" / nb / preset
            path = folder / f"tab_{table}.csv"
            if not path.is_file() or not (folder / "metrics.json").is_file():
                continue
            try:
                record = json.loads((folder / "metrics.json").read_text())
            except ValueError:
                record = {}
            if not _same_study(record, study):
                stale.append(str(path))
                continue
            parts.append(pd.read_csv(path).rename(columns={"defense": "scenario"}))
        rows = pd.concat(parts, ignore_index=True).drop_duplicates([*KEY, "example"]) if parts else None
        return cls(rows), stale

    def lookup(self, specs: list[CurveSpec], ids: np.ndarray) -> pd.DataFrame | None:
        """The rows of every curve in ``specs`` on the images ``ids``, or None if any is missing."""
        out = []
        for s in specs:
            part = self._parts.get((s.scenario, s.attack, s.goal, s.variant))
            if part is None:
                return None
            part = part.set_index("example").reindex(ids)
            if part.clean_correct.isna().any():  # an image this curve was not computed on
                return None
            out.append(part.reset_index().assign(scenario=s.scenario, attack=s.attack, goal=s.goal, variant=s.variant))
        return pd.concat(out, ignore_index=True)

    def curves(self) -> int:
        """How many curves the grid holds (each on some images)."""
        return len(self._parts)

    def add(self, rows: pd.DataFrame) -> None:
        self.rows = pd.concat([self.rows, rows], ignore_index=True).drop_duplicates(
            [*KEY, "example"], keep="last")
        self._index()


def curve_rows(study: Study, specs: list[CurveSpec], grid: Grid | None, n_images: int | None = None,
               progress: bool = True, executor=None) -> tuple[pd.DataFrame, str]:
    """The rows of ``specs`` on the first ``n_images`` images and where they came from: the
    ``grid`` when it holds them all ("grid"), else the study (computed or cached; "computed"),
    then added to the grid."""
    n = len(study.y) if n_images is None else n_images
    rows = grid.lookup(specs, study.ids[:n].numpy()) if grid is not None else None
    if rows is not None:
        return rows, "grid"
    rows = study.curves(specs, progress=progress, n_images=n, executor=executor)
    if grid is not None:
        grid.add(rows)
    return rows, "computed"


def run(study: Study, settings: Settings, progress: bool = True, grid: Grid | None = None) -> Result:
    """Curves of the chosen SEM (attacker A for gradient attacks, E for NES / SPSA) and its
    contrasts on the first ``n_images`` evaluation images, with clean Monte-Carlo accuracy: from
    ``grid`` when it holds them all, else computed (and added to ``grid``)."""
    start = time.perf_counter()
    if not 1 <= settings.n_images <= len(study.y):
        raise ValueError(f"n_images must lie in 1..{len(study.y)} (the study's images), got {settings.n_images}")
    names, specs = members(study, settings), curve_specs(study, settings)
    rows, source = curve_rows(study, specs, grid, settings.n_images, progress)
    rows = rows.assign(label=[study.label(CurveSpec(*k)) for k in rows[KEY].itertuples(index=False)])
    curves = asr_table(rows, study.eps_grid())
    acc = rows.groupby("label", sort=False).clean_correct.mean().rename("clean_accuracy").reset_index()
    return Result(rows, curves, acc, time.perf_counter() - start, names, source)


def compute_grid(study: Study, grid: Grid, k_ranges: list, sigma_sets: list, attacks: list, goals: list,
                 n_images: int | None = None, executor: Executor | None = None) -> pd.DataFrame:
    """Notebook 08's part of the grid: the SEM at each K range (every sigma) and at each sigma
    subset (K 1..4), under each attack and goal, on the study's first ``n_images`` images. Those
    ``grid`` lacks are computed (as the ``executor``'s tasks: workers register the custom SEMs)
    and added to it; returns the rows of all of them (what 08 saves as ``tab_grid.csv``)."""
    all_sigmas = tuple(float(s) for s in study.spec.sigmas)
    chosen = [Settings(tuple(k), all_sigmas) for k in k_ranges] + [Settings((1, 4), tuple(map(float, s)))
                                                                     for s in sigma_sets]
    specs = [CurveSpec("E" if a in QUERY_ATTACKS else "A", a, g, variant_for(study, s))
             for s in chosen for a in attacks for g in goals]
    if not specs:
        return pd.DataFrame(columns=["example", "distortion", "clean_correct", "label", *KEY])
    ids = study.ids[: len(study.y) if n_images is None else n_images].numpy()
    missing = [s for s in specs if grid.lookup([s], ids) is None]
    if missing:
        grid.add(study.curves(missing, n_images=len(ids), executor=executor))
    return grid.lookup(specs, ids)
