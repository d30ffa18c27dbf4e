"""The SEM's unsmoothed sub-models run once per distinct row (:func:`semlib.batching.unique_rows`
in :func:`semlib.ensemble.call_members`) or on every copy, in one run on the same settings
(issue 17: the judge's votes of one image reach them as copies). Reports wall time, the
sub-model calls without gradient (count, mean batch, rows), the ratio, and whether every
per-image row is identical (verdicts, votes spent, gradient passes: running each distinct row
once must change none of them; only floating-point order could).

Two workloads, each run alternately on every copy and once per distinct row, ``--repeats``
times, each in a fresh temporary cache: 06b's fixed-budget path (APGD, success judged at every
iterate) and an eps-search curve of the laptop study (attacker A, BIM untargeted). Run it with
nothing else busy:

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/bench_unique_rows.py \\
        --json benchmarks/results/unique_rows_<kind>.json
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

import semlib.ensemble
from bench_batches import Calls
from semlib import layout, robust
from semlib.batching import unique_rows
from semlib.params import load_params
from semlib.robust import RobustConfig
from semlib.study import Study, specs


def once_per_row(on: bool) -> None:
    semlib.ensemble.unique_rows = unique_rows if on else (lambda x: None)


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
            once_per_row(on)
            rec, r_rows = run("robust", a.images, a.steps, a.eot)
            c, c_rows = run("curve", a.curve_images, a.steps, a.eot)
            rows.setdefault(on, []).append((r_rows, c_rows))
            runs.append({"once_per_row": on, "repeat": rep, "robust_path": rec, "curve_A_bim": c})
            print(json.dumps(runs[-1]), flush=True)
    once_per_row(True)
    mean = lambda on, key, field: sum(r[key][field] for r in runs if r["once_per_row"] == on) / a.repeats  # noqa: E731
    summary = {key: {"seconds_every_copy": round(mean(False, key, "seconds"), 1),
                     "seconds_once": round(mean(True, key, "seconds"), 1),
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
