"""Run notebooks with papermill: ``python -m semlib.pipeline --preset laptop notebooks/*.ipynb``.

``--executor ray`` runs the zoo's training and the curve blocks as Ray tasks (semlib.runner).
Each notebook ``notebooks/NN_name.ipynb`` runs with the parameters in ``params/<preset>.yaml``
(those its parameters cell declares) and ``params/NN_name/<preset>.yaml`` (plus ``PRESET``) and is written, executed, to
``outputs/NN_name/<preset>/NN_name.ipynb`` beside the figures, tables and ``metrics.json``
it saves there.

A run is published only when it finishes (:class:`semlib.outputs.StagedRun`): it writes into
``outputs/NN_name/<preset>.running-XXXX/`` and that folder replaces ``<preset>/`` at the end.
A notebook that fails leaves ``<preset>/`` as the last finished run left it; its partial files
go to ``<preset>.failed/`` with an ``UNFINISHED.txt`` marker, and the command prints one line
and exits with status 1. Every notebook and preset is checked before the first one runs; a
missing one is one line and exit status 2. Before the first notebook it prints the plan: what
runs and an estimate of how long here (:mod:`semlib.plan`; ``--plan`` prints it and stops);
after the last, on the laptop preset, it rewrites the README's results block (:mod:`semlib.readme`).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from . import plan, readme
from .outputs import StagedRun, environ, error_line
from .params import load_params, notebook_parameters

ROOT = Path(__file__).resolve().parent.parent


class RunFailed(RuntimeError):
    """A notebook that stopped with an error; its partial outputs are in ``<preset>.failed/``."""


def check_notebook(notebook: str | Path, root: Path | None = None) -> Path:
    """``notebook`` as a path, or one clear error naming the notebooks there are."""
    notebook = Path(notebook)
    if notebook.suffix != ".ipynb" or not notebook.is_file():
        known = sorted(p.name for p in (Path(root or ROOT) / "notebooks").glob("*.ipynb"))
        raise FileNotFoundError(f"notebook {notebook} not found; notebooks: {', '.join(known) or 'none'} "
                                f"(in notebooks/)")
    return notebook


def run_notebook(notebook: str | Path, preset: str, root: Path | None = None, extra: dict[str, Any] | None = None,
                 kernel: str = "python3") -> Path:
    """Execute one notebook on a preset; returns the executed notebook's path.

    The run writes into a staging folder and replaces ``outputs/<notebook>/<preset>/`` only
    when it finishes; a failed run raises :class:`RunFailed` (one line) and leaves the previous
    outputs untouched, its own in ``outputs/<notebook>/<preset>.failed/``.
    """
    import papermill as pm

    root = Path(root or ROOT)
    notebook = check_notebook(notebook, root)
    name = notebook.stem
    params = {**load_params(name, preset, root), "PRESET": preset, **(extra or {})}
    run = StagedRun(name, preset, root)
    try:
        with run:
            if "OUTPUT_DIR" in notebook_parameters(notebook):
                params["OUTPUT_DIR"] = str(run.path)
            with environ(run.env()):  # the kernel inherits it: OutputDir writes into run.path
                pm.execute_notebook(str(notebook), str(run.path / notebook.name), parameters=params,
                                    kernel_name=kernel, cwd=str(root), progress_bar=False)
    except Exception as e:
        if run.error is None:  # the run never started (or could not be published): not a notebook failure
            raise
        raise RunFailed(f"{notebook.name} ({preset}) failed: {error_line(e)}; its partial outputs are in "
                        f"{run.failed} (marked {run.failed.name}/UNFINISHED.txt); {run.final} keeps the last "
                        f"finished run") from e
    return run.final / notebook.name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+", help="notebook files, run in the order given")
    ap.add_argument("--preset", default="laptop", help="smoke, laptop or paper (params/<notebook>/<preset>.yaml)")
    ap.add_argument("--retrain-zoo", action="store_true", help="retrain every zoo model (notebook 01_zoo)")
    ap.add_argument("--executor", choices=("local", "serial", "ray"), default=None,
                    help="where sub-model training and curve blocks run: local (a pool of worker processes, one per "
                         "core: the default), serial (this process), ray (a local Ray; for a cluster set EXECUTOR: "
                         "{kind: ray, address: ...} in the params files)")
    ap.add_argument("--plan", action="store_true", help="print what would run and the time estimate, then stop")
    args = ap.parse_args(argv)
    extras = []
    try:  # every notebook and preset before the first run
        for nb in args.notebooks:
            nb = check_notebook(nb, ROOT)
            params = load_params(nb.stem, args.preset, ROOT)
            extra = {"RETRAIN": True} if args.retrain_zoo and nb.stem == "01_zoo" else {}
            if args.executor and "EXECUTOR" in notebook_parameters(nb):
                extra["EXECUTOR"] = {**params.get("EXECUTOR", {}), "kind": args.executor}
            extras.append(extra)
    except (OSError, ValueError) as e:
        print(f"semlib.pipeline: {e}", file=sys.stderr)
        return 2
    score = plan.machine_score()
    steps = plan.plan(args.notebooks, args.preset, ROOT, score)
    print(plan.describe(steps, args.preset, score), flush=True)
    if args.plan:
        return 0
    with environ({plan.SCORE_ENV: f"{score:.1f}"}):  # the kernels record it beside their wall time (metrics.json)
        status = _run_all(args, extras, steps)
    if status:
        return status
    if args.preset == readme.PRESET and (ROOT / "README.md").is_file():  # the committed preset: its results block
        try:
            changed = readme.update(ROOT / "README.md", ROOT, args.preset)
        except ValueError as e:
            print(f"semlib.pipeline: the runs finished, but {e}", file=sys.stderr)
            return 1
        print(f"[semlib] README results block {'rewritten' if changed else 'already current'}", flush=True)
    return 0


def _run_all(args, extras: list, steps: list) -> int:
    for i, (nb, extra, st) in enumerate(zip(args.notebooks, extras, steps), 1):
        start = time.perf_counter()
        eta = f", ~{plan.duration(st.estimate)} expected" if st.estimate is not None else ""
        print(f"[semlib] {i}/{len(steps)} {nb} ({args.preset}{eta}) ...", flush=True)
        try:
            out = run_notebook(nb, args.preset, ROOT, extra=extra)
        except RunFailed as e:
            print(f"semlib.pipeline: {e}", file=sys.stderr)
            return 1
        print(f"[semlib] {nb} done in {time.perf_counter() - start:.0f} s -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
