"""The Monte-Carlo judge with and without its lookahead (:func:`semlib.judge.judge`), in one run
on the same settings: a robust point's votes in one round instead of three (issue 17: fewer,
larger sub-model calls). Reports wall time, the sub-model calls without gradient (count, mean
batch), the ratio, and whether every per-image row is identical (verdicts, votes spent, gradient
passes: the lookahead must change none of them; only floating-point order could).

Two workloads, each run alternately without and with the lookahead, ``--repeats`` times, each in
a fresh temporary cache: 06b's fixed-budget path (APGD, success judged at every iterate) and an eps-search curve of the laptop study (attacker A, BIM
untargeted: looks that often succeed early, where drawing ahead wastes votes). Run it with
nothing else busy:

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/bench_judge_lookahead.py \\
        --json benchmarks/results/judge_lookahead_<kind>.json
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import tempfile
import time
from pathlib import Path

import torch

import semlib.judge
from bench_batches import Calls
from semlib import layout, robust
from semlib.params import load_params
from semlib.robust import RobustConfig
from semlib.study import Study, specs


def lookahead(on: bool) -> None:
    fn = inspect.unwrap(semlib.judge.judge)  # every caller's default (lookahead is the last parameter)
    fn.__defaults__ = (*fn.__defaults__[:-1], on)


def run(workload: str, images: int, steps: int, eot: int) -> tuple[dict, list]:
    """``robust`` (the SEM, APGD-CE at Linf 4/255, ``steps`` x ``eot``) or ``curve`` (attacker A, BIM
    untargeted, the study's eps search) on the laptop study's first ``images``, in a fresh cache:
    the measurements and the per-image rows."""
    calls = Calls()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SEMLIB_CACHE"] = cache  # nothing reused
        study = Study.from_params(load_params("06b_adaptive", "laptop"), n_images=images, shard_size=images)
        calls.watch(study.defenses("sem").models.values())
        start = time.perf_counter()
        if workload == "robust":
            cfg = RobustConfig(eps=4 / 255, steps=steps, eot=eot, attacks=("apgd-ce",), judge=study.cfg.judge(),
                               channels_last=study.cfg.channels_last)
            rows = robust.study_rows(study, robust.defense_models(study, ["SEM"]), cfg, progress=False)
        else:
            rows = study.curves(specs(["A"], ["bim"], ["untargeted"]), progress=False)
        seconds = time.perf_counter() - start
    votes = [r for r, g in zip(calls.rows, calls.grad) if not g]
    return ({"seconds": round(seconds, 1), "vote_calls": len(votes),
             "vote_mean_batch": round(sum(votes) / max(len(votes), 1), 1), "vote_rows": sum(votes),
             "judge_draws": int(rows.judge_draws.sum())},
            rows.select_dtypes(exclude="float").to_dict("records") + rows.select_dtypes("float").round(12).to_dict("records"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=25, help="images of the robust path")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--eot", type=int, default=4)
    ap.add_argument("--curve-images", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    runs, rows = [], {}
    for rep in range(a.repeats):
        for on in (False, True):
            lookahead(on)
            rec, r_rows = run("robust", a.images, a.steps, a.eot)
            c, c_rows = run("curve", a.curve_images, a.steps, a.eot)
            rows.setdefault(on, []).append((r_rows, c_rows))
            runs.append({"lookahead": on, "repeat": rep, "robust_path": rec, "curve_A_bim": c})
            print(json.dumps(runs[-1]), flush=True)
    lookahead(True)
    mean = lambda on, key, field: sum(r[key][field] for r in runs if r["lookahead"] == on) / a.repeats  # noqa: E731
    summary = {key: {"seconds_without": round(mean(False, key, "seconds"), 1),
                     "seconds_with": round(mean(True, key, "seconds"), 1),
                     "speedup": round(mean(False, key, "seconds") / mean(True, key, "seconds"), 2)}
               for key in ("robust_path", "curve_A_bim")}
    summary["identical"] = all(x == y for x, y in zip(rows[False], rows[True]))
    print(json.dumps(summary))
    if a.json:
        a.json.write_text(json.dumps({"cpu_capability": layout.cpu_capability(), "torch": torch.__version__,
                                      "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                                      "settings": vars(a) | {"json": str(a.json)}, "summary": summary,
                                      "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
