"""How fast notebook 08's explorer redraws from the grid (issue 18's goal: well under a second).

    .venv/bin/python benchmarks/bench_explore.py --preset laptop --json benchmarks/results/explore_laptop.json

Builds the preset's study and the grid of its committed outputs (notebooks 02-06b and 08), then
times a whole widget redraw — settings read, rows looked up, ASR curves with their bands, the
figure rendered to PNG, the accuracy table — for each setting of the grid it is asked about,
several times each (median and max), with the data already loaded (the widget's situation). A
setting the grid lacks is reported as such, never computed here.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from semlib import explore, layout  # noqa: E402
from semlib.params import load_params  # noqa: E402
from semlib.study import Study  # noqa: E402
from semlib.widgets import Explorer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    params = {**load_params("08_explore", args.preset, ROOT), "PRESET": args.preset}
    study = Study.from_params(params)
    grid, stale = explore.Grid.from_outputs(ROOT, args.preset, study)
    sigmas = tuple(float(s) for s in study.spec.sigmas)
    n = len(study.y)
    asked = [("K 1..4, every sigma (03)", dict(k_range=(1, 4), sigmas=sigmas)),
             ("K 6..8, every sigma (05)", dict(k_range=(6, 8), sigmas=sigmas)),
             ("K 1..4, targeted (03)", dict(k_range=(1, 4), sigmas=sigmas, goal="targeted")),
             ("K 1..4, NES (04)", dict(k_range=(1, 4), sigmas=sigmas, attack="nes")),
             ("K 1..1, every sigma (08)", dict(k_range=(1, 1), sigmas=sigmas)),
             ("K 1..4, sigma 0.25 only (08)", dict(k_range=(1, 4), sigmas=(0.25,)))]
    ex = Explorer(study, n, grid)
    rows = []
    for name, kw in asked:
        settings = explore.Settings(n_images=n, **kw)
        if grid.lookup(explore.curve_specs(study, settings), study.ids[:n].numpy()) is None:
            rows.append({"setting": name, "in_grid": False})
            print(f"{name:<32} not in the grid (run its notebook on {args.preset})", flush=True)
            continue
        ex.k.value, ex.sigmas.value = settings.k_range, settings.sigmas
        ex.attack.value, ex.goal.value = settings.attack, settings.goal
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = ex.run()
            times.append(time.perf_counter() - start)
            assert result is not None and result.source == "grid"
        rows.append({"setting": name, "in_grid": True, "images": n, "median_s": round(statistics.median(times), 3),
                     "max_s": round(max(times), 3)})
        print(f"{name:<32} redraw median {statistics.median(times):.3f} s, max {max(times):.3f} s ({n} images)",
              flush=True)
    out = {"preset": args.preset, "cpu_capability": layout.cpu_capability(), "grid_curves": grid.curves(),
           "stale": stale, "redraws": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
