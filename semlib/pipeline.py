"""Run notebooks with papermill: ``python -m semlib.pipeline --preset laptop notebooks/*.ipynb``.

``--executor ray`` runs the zoo's training and the curve shards as Ray tasks (semlib.runner).
Each notebook ``notebooks/NN_name.ipynb`` runs with the parameters in
``params/NN_name/<preset>.yaml`` (plus ``PRESET``) and is written, executed, to
``outputs/NN_name/<preset>/NN_name.ipynb`` beside the figures, tables and ``metrics.json``
it saves there.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from .params import load_params, notebook_parameters

ROOT = Path(__file__).resolve().parent.parent


def run_notebook(notebook: str | Path, preset: str, root: Path = ROOT, extra: dict[str, Any] | None = None,
                 kernel: str = "python3") -> Path:
    """Execute one notebook on a preset; returns the executed notebook's path."""
    import papermill as pm

    notebook = Path(notebook)
    name = notebook.stem
    params = {**load_params(name, preset, root), "PRESET": preset, **(extra or {})}
    out_dir = root / "outputs" / name / preset
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / notebook.name
    pm.execute_notebook(str(notebook), str(out), parameters=params, kernel_name=kernel, cwd=str(root),
                        progress_bar=False)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+", help="notebook files, run in the order given")
    ap.add_argument("--preset", default="laptop", help="smoke, laptop or paper (params/<notebook>/<preset>.yaml)")
    ap.add_argument("--retrain-zoo", action="store_true", help="retrain every zoo model (notebook 01_zoo)")
    ap.add_argument("--executor", choices=("serial", "ray"), default=None,
                    help="run sub-model training and curve shards as Ray tasks (a local Ray over this machine's "
                         "cores; for a cluster set EXECUTOR: {kind: ray, address: ...} in the params files)")
    args = ap.parse_args(argv)
    for nb in args.notebooks:
        extra = {"RETRAIN": True} if args.retrain_zoo and Path(nb).stem == "01_zoo" else {}
        if args.executor and "EXECUTOR" in notebook_parameters(nb):
            extra["EXECUTOR"] = {**load_params(Path(nb).stem, args.preset).get("EXECUTOR", {}), "kind": args.executor}
        start = time.perf_counter()
        print(f"[semlib] {nb} ({args.preset}) ...", flush=True)
        out = run_notebook(nb, args.preset, extra=extra)
        print(f"[semlib] {nb} done in {time.perf_counter() - start:.0f} s -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
