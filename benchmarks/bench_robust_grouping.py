"""What 06b gains by computing every budget of an image shard together (issue 17): the same
robust-accuracy rows computed (a) budget by budget, each budget's defenses together (the shard
tasks before 2026-11-29), and (b) with every budget and defense of the shard together
(:func:`semlib.robust.precompute` now). Reports wall time, sub-model calls with and without
gradient (mean and median rows per call), GFLOP/s (``bench_batches.Calls``) and how many
per-image verdicts differ between (a) and (b): the random draws are the same, so a difference
comes from floating-point order alone (a convolution sums in another order at another batch
size) and can flip a vote or an iterate's verdict. Each mode uses a fresh temporary cache, in
this process (serial), run with nothing else busy:

    .venv/bin/python benchmarks/bench_robust_grouping.py --images 25 --defenses SEM,F,G \\
        --json benchmarks/results/robust_grouping_<kind>.json
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from bench_batches import Calls
from bench_robust_cost import batches
from semlib import layout, robust
from semlib.params import load_params
from semlib.robust import RobustConfig
from semlib.study import Study

BUDGETS = {"linf 4/255": ("linf", 4 / 255), "l2 0.5": ("l2", 0.5), "linf 8/255": ("linf", 8 / 255)}


def measure(images: int, budgets: list[str], defenses: list[str], steps: int, eot: int, targets: int,
            preset: str) -> dict:
    params = load_params("06b_adaptive", preset)
    out, rows, calls = {}, {}, Calls()
    for mode in ("per budget", "per shard"):
        with tempfile.TemporaryDirectory() as cache:
            os.environ["SEMLIB_CACHE"] = cache  # the study's curve cache: nothing reused
            study = Study.from_params(params, n_images=images, shard_size=images)
            models = robust.defense_models(study, defenses)
            cfgs = [RobustConfig(eps=BUDGETS[b][1], norm=BUDGETS[b][0], steps=steps, eot=eot, targets=targets,
                                 judge=study.cfg.judge(), channels_last=study.cfg.channels_last) for b in budgets]
            calls.watch(models.values())
            calls.reset()
            start = time.perf_counter()
            if mode == "per budget":
                for c in cfgs:
                    robust.precompute(study, [(models, c)], None, progress=False)
            else:
                robust.precompute(study, [(models, c) for c in cfgs], None, progress=False)
            seconds = time.perf_counter() - start
            rows[mode] = pd.concat([robust.study_rows(study, models, c, progress=False) for c in cfgs],
                                   ignore_index=True)
        out[mode] = {"seconds": round(seconds, 1), "robust": int(rows[mode].robust.sum()),
                     "votes": int(rows[mode].judge_draws.sum()), "gradients": int(rows[mode].gradients.sum()),
                     **batches(calls, seconds)}
        print(mode, json.dumps(out[mode]), flush=True)
    a, b = rows["per budget"], rows["per shard"]
    return {"images": images, "budgets": budgets, "defenses": defenses, "steps": steps, "eot": eot,
            "targets": targets, **out,
            "speedup": round(out["per budget"]["seconds"] / out["per shard"]["seconds"], 2),
            "verdicts": len(a), "robust_differs": int((a.robust != b.robust).sum()),
            "broken_by_differs": int((a.broken_by.fillna("") != b.broken_by.fillna("")).sum()),
            "rows_identical": bool(a.equals(b))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--images", type=int, default=25)
    ap.add_argument("--budgets", default="linf 4/255,l2 0.5", help="comma-separated, of " + ", ".join(BUDGETS))
    ap.add_argument("--defenses", default="SEM,F,G", help="comma-separated, of " + ",".join(robust.DEFENSES))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--eot", type=int, default=4)
    ap.add_argument("--targets", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write the record to this file")
    a = ap.parse_args()
    record = measure(a.images, a.budgets.split(","), a.defenses.split(","), a.steps, a.eot, a.targets, a.preset)
    print(json.dumps(record))
    if a.json:
        a.json.write_text(json.dumps({"cpu_capability": layout.cpu_capability(), "torch": torch.__version__,
                                      "threads": torch.get_num_threads(), "cpus": os.cpu_count(), **record},
                                     indent=1) + "\n")


if __name__ == "__main__":
    main()
