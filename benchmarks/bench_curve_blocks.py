"""What blocks buy the curves on the default executor (issue 17): the same curves, images and
shards computed on the local pool of single-thread workers (one per core, as ``make reproduce``
runs them) under several layouts, each from an empty cache; reports wall time, the number of
tasks, the speed-up against the first layout and the share of per-image rows (distortion,
clean verdict, judge draws, gradient passes) identical to the first layout's.

Layouts (``shard_size`` stays, so every layout stores the same shards):
``shard by shard`` — a block per shard, its curves together (the engine before blocks);
``blocks of N`` — the shards of a block of N images computed as one batch, curves together, a
task per block; ``curve by curve, one block`` — each curve alone on all the images, a task per
curve (``together: false``). Run it with nothing else busy:

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/bench_curve_blocks.py --images 16 --shard 4 \\
        --json benchmarks/results/curve_blocks_16_<kind>.json
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from semlib import layout, runner
from semlib.study import Study, StudyConfig, specs

# a laptop-like sweep: attackers A and B on the SEM, contrasts F and G, BIM untargeted and PGD targeted
CURVES = specs("ABFG", ["bim"], ["untargeted"]) + specs("AG", ["pgd"], ["targeted"])
SWEEP = dict(steps=5, period=2, eot=2, judge_n=100, search_steps=6, binary_steps=3)
COLUMNS = ["label", "example", "distortion", "clean_correct", "judge_draws", "gradients"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", default="laptop")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--shard", type=int, default=4)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    n, s = a.images, a.shard
    layouts = {"shard by shard": {"block": s}, f"blocks of {n // 2}": {"block": n // 2}, f"blocks of {n}": {"block": n},
               "curve by curve, one block": {"block": n, "together": False}}
    executor = runner.Executor(kind="local")
    results, first = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in layouts.items():
            study = Study(a.zoo, StudyConfig.from_dict({**SWEEP, "n_images": n, "shard_size": s, **extra}), threshold=0.2,
                          cache_dir=Path(tmp) / name)
            tasks = len(study.shard_tasks(CURVES))
            start = time.perf_counter()
            rows = study.curves(CURVES, progress=False, executor=executor)
            wall = time.perf_counter() - start
            rows = rows[COLUMNS].fillna({"distortion": -1}).sort_values(["label", "example"]).reset_index(drop=True)
            first = rows if first is None else first
            results[name] = {**extra, "tasks": tasks, "wall_s": round(wall, 1),
                             "speedup": round(next(iter(results.values()))["wall_s"] / wall, 2) if results else 1.0,
                             "rows_identical": round(float((rows == first).all(axis=1).mean()), 3)}
            print(name, json.dumps(results[name]), flush=True)
    out = {"cpu_capability": layout.cpu_capability(), "torch": torch.__version__, "cpus": os.cpu_count(),
           "workers": executor.num_cpus or os.cpu_count(), "zoo": a.zoo, "curves": len(CURVES), "images": n,
           "shard": s, "sweep": SWEEP, "layouts": results}
    print(json.dumps(out, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
