"""Every figure of notebooks 00-07 as a function of the tables the notebook saves and its
parameters: the notebooks draw them through :func:`save`, and ``make figures`` (``python -m
semlib.figures``) redraws them from the committed ``tab_*.csv`` and ``metrics.json`` alone, in
seconds, without data, models or a cache. (The image grids of 00_data and 08's gallery are drawn
from images, not from a table: only the notebook draws them.)
"""
from __future__ import annotations

import argparse
import ast
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

from . import paper, plots, readme
from .claims import Plan
from .outputs import OutputDir, as_stored, project_root
from .specs import StudyConfig
from .zoospec import load_spec


def _norm(p: dict) -> str:
    """The run's norm (read, not validated: an older run's settings may predate today's checks)."""
    return (p.get("STUDY") or {}).get("norm", StudyConfig.norm)


def _zoo(p: dict) -> str:
    return p.get("ZOO") or p["PRESET"]


def _goal(goal: str, draw: Callable) -> Callable:
    """``draw`` on the rows of one goal, when the run had that goal."""
    return lambda tab, p: draw(tab[tab.goal == goal], p) if goal in p.get("GOALS", [goal]) else None


def _cert(title: str, xlabel: str) -> Callable:
    return lambda tab, p: plots.certified_curves(tab, title.format(sigma=p["CERT"]["sigma"]),
                                                 xlabel.format(space=load_spec(_zoo(p)).noise_space))


@dataclass(frozen=True)
class Figure:
    """One figure: ``fig_<name>`` of ``notebook``, drawn by ``draw(*tables, params)`` (None: the
    run's parameters leave it out) from the tables ``tab_<table>.csv``."""

    notebook: str
    name: str
    tables: tuple[str, ...]
    draw: Callable[..., Any]


FIGURES = (
    Figure("00_data", "class_balance", ("class_balance",), lambda t, p: plots.class_balance(t)),
    Figure("01_zoo", "table1", ("table1",), lambda t, p: plots.table1_heatmaps(t, paper.table1(), f"this zoo ({_zoo(p)})")),
    Figure("01_zoo", "accuracy_vs_sigma", ("zoo",), lambda t, p: plots.accuracy_vs_sigma(t, f"zoo {_zoo(p)}")),
    Figure("02_baselines", "fig3", ("asr",), lambda t, p: plots.asr_panels(
        t, solid=["RSE", "ADP", "F"], dashed=["G", "H", "I"], norm=_norm(p),
        title="Fig. 3: baselines under white-box attacks")),
    Figure("03_whitebox_transfer", "fig4", ("asr",), _goal("untargeted", lambda t, p: plots.asr_panels(
        t, solid=list("ABCD"), dashed=list("FGHI"), norm=_norm(p),
        title="Fig. 4: untargeted; solid A-D on the SEM, dashed F-I"))),
    Figure("03_whitebox_transfer", "fig5", ("fig5",), lambda t, p: plots.asr_panels(
        t, rows="view", solid=list("ABCD"), dashed=list("FGHI"), norm=_norm(p),
        title="Fig. 5: targeted, with a small-eps zoom") if len(t) else None),
    Figure("04_query_blackbox", "fig6", ("asr",), lambda t, p: plots.asr_panels(
        t, solid=["E"], dashed=list("JKLM"), norm=_norm(p),
        title="Fig. 6: NES and SPSA; solid E on the SEM, dashed J-M")),
    *(Figure("05_ensemble_strategy", name, ("asr",), _goal(goal, lambda t, p, name=name, goal=goal: plots.asr_panels(
        t, solid=["A", "A (K 6..8)", "A (WRN SEM)"], dashed=["F", "G"], norm=_norm(p),
        title=f"Fig. {name[3:]}: {goal}; SEM K 1..4 vs K 6..8 vs single-architecture")))
      for goal, name in (("untargeted", "fig7"), ("targeted", "fig8"))),
    Figure("06_certify_sem", "clean_accuracy", ("clean_accuracy",),
           lambda t, p: plots.accuracy_bars(t, title="clean Monte-Carlo accuracy (95% CI)")),
    Figure("06_certify_sem", "certified_accuracy", ("certified_accuracy",),
           _cert("certified accuracy, sigma = {sigma} (shared noise)", "L2 radius ({space} units)")),
    Figure("06_certify_sem", "certified_accuracy_pixel", ("certified_accuracy_pixel",),
           _cert("pixel-space certified accuracy, sigma = {sigma}",
                 "L2 radius (pixels in [0, 1]; a lower bound unless the noise is in pixels)")),
    Figure("06b_adaptive", "adaptive", ("asr",), lambda t, p: plots.asr_panels(
        t, solid=["SEM", "A"], dashed=["F", "G"], norm=_norm(p),
        title="adaptive APGD-EOT (left) vs attacker A with BIM (right)")),
    Figure("06b_adaptive", "convergence", ("convergence",), lambda t, p: plots.convergence(
        t, f"robust accuracy at Linf {p['CONVERGENCE']['eps'] * 255:.0f}/255")),
    Figure("07_claims", "ledger", ("comparisons",), lambda t, p: plots.ledger(
        t, Plan.from_yaml(project_root() / "params" / "claims.yaml").bound)),
)


def save(out: OutputDir, params: dict[str, Any], only: str | None = None, close: bool = False,
         **tables: pd.DataFrame) -> None:
    """Draw and save every figure of ``out``'s notebook (or the one named ``only``) whose
    tables are all in ``tables`` (by topic, as saved: ``asr=tab``); in a notebook the figures
    stay open, so they show below the cell (``close``: close them). Each table is drawn as it is
    stored (:func:`semlib.outputs.as_stored`), as ``make figures`` reads it."""
    for path, fig in _draw(out, params, only, **{t: as_stored(df) for t, df in tables.items()}):
        if close:
            plt.close(fig)


def _draw(out: OutputDir, params: dict[str, Any], only: str | None, **tables: pd.DataFrame) -> list:
    drawn = []
    for f in FIGURES:
        if f.notebook == out.notebook and only in (None, f.name) and all(t in tables for t in f.tables):
            fig = f.draw(*(tables[t] for t in f.tables), params)
            if fig is not None:
                drawn.append((out.save_figure(fig, f.name), fig))
    return drawn


def run_params(folder: Path) -> dict[str, Any]:
    """The parameters a run recorded in its ``metrics.json`` (a Python literal, read without executing it)."""
    raw = json.loads((folder / "metrics.json").read_text())["params"]
    return ast.literal_eval(raw) if isinstance(raw, str) else raw


def render(preset: str = "laptop", root: Path | None = None, notebooks: list[str] | None = None
           ) -> tuple[list[Path], list[str]]:
    """Redraw every figure of the committed outputs of ``preset`` from their tables. Returns the
    PNG paths and the figures left out (``<notebook>/<name>``: the run saved no such table, or
    its parameters leave the figure out); a notebook without outputs is skipped."""
    root = Path(root or project_root())
    saved, left = [], []
    for nb in sorted({f.notebook for f in FIGURES}):
        folder = root / "outputs" / nb / preset
        if (notebooks and nb not in notebooks) or not (folder / "metrics.json").is_file():
            continue
        names = {t for f in FIGURES if f.notebook == nb for t in f.tables}
        tables = {t: pd.read_csv(folder / f"tab_{t}.csv") for t in sorted(names) if (folder / f"tab_{t}.csv").is_file()}
        out, params = OutputDir(nb, preset, root), run_params(folder)
        for f in (f for f in FIGURES if f.notebook == nb):
            try:
                done = _draw(out, params, f.name, **{t: tables[t] for t in f.tables if t in tables})
            except (KeyError, AttributeError, ValueError) as e:  # a table of an older format
                left.append(f"{nb}/{f.name} ({type(e).__name__}: {e}; rerun the notebook)")
                continue
            for path, fig in done:
                saved.append(path)
                plt.close(fig)
            if not done:
                left.append(f"{nb}/{f.name}")
    return saved, left


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Redraw the notebooks' figures from their committed tables.")
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("notebooks", nargs="*", help="notebook stems (default: all)")
    args = ap.parse_args(argv)
    matplotlib.use("Agg")
    start = time.perf_counter()
    saved, left = render(args.preset, notebooks=args.notebooks or None)
    for path in saved:
        print(path)
    print(f"{len(saved)} figures redrawn in {time.perf_counter() - start:.1f} s"
          + (f"; left out (no table, or not in that run): {', '.join(left)}" if left else ""))
    if args.preset == readme.PRESET and not args.notebooks:
        changed = readme.update(project_root() / "README.md", project_root(), args.preset)
        print(f"README results block {'rewritten' if changed else 'already current'}")


if __name__ == "__main__":
    main()
