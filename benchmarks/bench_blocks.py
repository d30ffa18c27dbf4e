"""What ``StudyConfig.block`` buys 06b's robust table (issue 17): the same images, shards and
attack computed with blocks of one shard (each shard its own batch, the engine before blocks)
and with larger blocks (the uncached shards of a block stepped as one batch, then cached shard
by shard). Reports wall time, the sub-model calls with and without gradient (count, mean and
median batch), GFLOP/s, the speed-up against the first block size, and whether every per-image
column (clean verdict, robust, broken_by, EOT passes, judge draws, unconfirmed looks) is the
same. Each run uses a fresh temporary cache; run it with nothing else busy:

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/bench_blocks.py --images 100 --shard 25 --blocks 25,100 \\
        --defenses SEM --json benchmarks/results/blocks_<kind>.json

``--threads 1`` measures a pool worker's setting (one thread).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from bench_batches import Calls
from bench_laptop_work import fresh_cache
from bench_robust_cost import batches
from semlib import layout, robust
from semlib.params import load_params
from semlib.robust import RobustConfig
from semlib.study import Study

COLUMNS = ["label", "example", "clean_correct", "robust", "broken_by", "gradients", "judge_draws", "unconfirmed"]


def measure(images: int, shard: int, blocks: list[int], defenses: list[str], eps: float, steps: int, eot: int,
            attacks: tuple[str, ...], preset: str) -> dict:
    params = load_params("06b_adaptive", preset)
    runs, first = [], None
    for block in blocks:
        with fresh_cache():  # nothing reused
            study = Study.from_params(params, n_images=images, shard_size=shard, block=block)
            models = robust.defense_models(study, defenses)
            cfg = RobustConfig(eps=eps, norm="linf", steps=steps, eot=eot, targets=3, attacks=attacks,
                               judge=study.cfg.judge(), channels_last=study.cfg.channels_last)
            calls = Calls()
            calls.watch(models.values())
            calls.reset()
            start = time.perf_counter()
            rows = robust.study_rows(study, models, cfg, progress=False)
            seconds = time.perf_counter() - start
        rows = rows[COLUMNS].fillna({"broken_by": ""}).sort_values(["label", "example"]).reset_index(drop=True)
        first = rows if first is None else first
        runs.append({"block": block, "seconds": round(seconds, 1), "robust": int(rows.robust.sum()),
                     "votes": int(rows.judge_draws.sum()), "gradients": int(rows.gradients.sum()),
                     "rows_identical_to_first": bool(rows.equals(first)),
                     "images_that_differ": int((rows != first).any(axis=1).sum()), **batches(calls, seconds)})
        runs[-1]["speedup"] = round(runs[0]["seconds"] / seconds, 2)
        print(json.dumps(runs[-1]), flush=True)
    return {"images": images, "shard": shard, "defenses": defenses, "eps": eps, "steps": steps, "eot": eot,
            "attacks": list(attacks), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--shard", type=int, default=25)
    ap.add_argument("--blocks", default="25,100", help="comma-separated block sizes (images)")
    ap.add_argument("--defenses", default="SEM", help="comma-separated, of " + ",".join(robust.DEFENSES))
    ap.add_argument("--eps", type=float, default=4 / 255)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--eot", type=int, default=4)
    ap.add_argument("--attacks", default="apgd-ce")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, help="append the record to this file")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    record = measure(a.images, a.shard, [int(b) for b in a.blocks.split(",")], a.defenses.split(","), a.eps,
                     a.steps, a.eot, tuple(a.attacks.split(",")), a.preset)
    record["threads"] = torch.get_num_threads()
    if a.json:
        old = json.loads(a.json.read_text())["records"] if a.json.is_file() else []
        a.json.write_text(json.dumps({"cpu_capability": layout.cpu_capability(), "torch": torch.__version__,
                                      "cpus": os.cpu_count(), "records": old + [record]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
