"""Interactive exploration (notebook 08): a SEM of the user's choosing — K range, sigmas,
architectures — under one attack, beside the ensemble-smoothed (F) and single smoothed (G)
contrasts. Pure functions of a :class:`Settings`; the widgets in :mod:`semlib.widgets` only
collect the settings and show what these return. Results are cached by the study, so a setting
seen before redraws without attacking again."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd

from .study import QUERY_ATTACKS, CurveSpec, Study, asr_table

CONTRAST = {"query": ("J", "K"), "gradient": ("F", "G")}


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


def run(study: Study, settings: Settings, progress: bool = True) -> Result:
    """Curves of the chosen SEM (attacker A for gradient attacks, E for NES / SPSA) and its
    contrasts on the first ``n_images`` evaluation images, with clean Monte-Carlo accuracy."""
    start = time.perf_counter()
    if not 1 <= settings.n_images <= len(study.y):
        raise ValueError(f"n_images must lie in 1..{len(study.y)} (the study's images), got {settings.n_images}")
    names = members(study, settings)
    variant = study.add_variant(settings.name(), names, settings.k_range)
    query = settings.attack in QUERY_ATTACKS
    sem = "E" if query else "A"
    curve_specs = [CurveSpec(sem, settings.attack, settings.goal, variant)]
    curve_specs += [CurveSpec(c, settings.attack, settings.goal) for c in CONTRAST["query" if query else "gradient"]]
    rows = study.curves(curve_specs, progress=progress, n_images=settings.n_images)
    curves = asr_table(rows, study.eps_grid())
    acc = rows.groupby("label", sort=False).clean_correct.mean().rename("clean_accuracy").reset_index()
    return Result(rows, curves, acc, time.perf_counter() - start, names)
