"""What 06b's fixed-budget robust-accuracy table costs per image on this machine (issue 16's
laptop sizes were chosen from it): for each defense, one :func:`semlib.robust.study_rows` call
on the laptop study's first images at one budget, reporting wall time, EOT gradient passes,
Monte-Carlo votes (clean verdict plus every judged iterate) and how many images stayed robust,
and where the time went: seconds inside the Monte-Carlo judge and inside EOT gradients, the
sub-model calls with and without gradient with their mean and median batch (rows per call), and
the GFLOP/s achieved (``bench_batches.Calls``: forward passes, one more forward's worth per
gradient pass).
Each run uses a fresh temporary cache, so nothing is reused; run it with nothing else busy:

    .venv/bin/python benchmarks/bench_robust_cost.py --images 30 --eps 0.0156862745098 \\
        --defenses SEM --attacks apgd-ce --json benchmarks/results/robust_cost_<kind>.json

Several calls append to the same JSON file (one record per defense and setting).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

import torch

import semlib.attacks.apgd
import semlib.judge
from bench_batches import Calls
from semlib import layout, robust
from semlib.params import load_params
from semlib.robust import RobustConfig
from semlib.study import Study


def measure(images: int, eps: float, norm: str, steps: int, eot: int, targets: int, defenses: list[str],
            attacks: tuple[str, ...], preset: str) -> list[dict]:
    params = load_params("06b_adaptive", preset)
    out, calls = [], Calls()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SEMLIB_CACHE"] = cache  # the study's curve cache: nothing reused
        study = Study.from_params(params, n_images=images, shard_size=images)
        models = robust.defense_models(study, defenses)
        cfg = RobustConfig(eps=eps, norm=norm, steps=steps, eot=eot, targets=targets, attacks=attacks,
                           judge=study.cfg.judge(), channels_last=study.cfg.channels_last)
        for name in defenses:
            calls.watch([models[name]])
            calls.reset()
            with timed() as spent:
                start = time.perf_counter()
                rows = robust.study_rows(study, {name: models[name]}, cfg, progress=False)
                seconds = time.perf_counter() - start
            out.append({"defense": name, "images": images, "norm": norm, "eps": eps, "steps": steps, "eot": eot,
                        "targets": targets, "attacks": list(attacks), "seconds": round(seconds, 1),
                        "seconds_per_image": round(seconds / images, 2),
                        "clean_correct": int(rows.clean_correct.sum()), "robust": int(rows.robust.sum()),
                        "gradients": int(rows.gradients.sum()), "votes": int(rows.judge_draws.sum()),
                        "broken_by": {k: int(v) for k, v in rows.broken_by.value_counts().items() if k},
                        **spent, **batches(calls, seconds)})
            print(json.dumps(out[-1]), flush=True)
    return out


def batches(calls: Calls, seconds: float) -> dict:
    """The sub-model calls without and with gradient (count, rows, mean and median batch) and the
    GFLOP/s of the run."""
    out = {"gflop": round(calls.flops / 1e9, 1), "gflop_per_s": round(calls.flops / 1e9 / seconds, 2)}
    for grad, key in ((False, "vote_calls"), (True, "gradient_calls")):
        rows = torch.tensor([r for r, g in zip(calls.rows, calls.grad) if g == grad] or [0], dtype=torch.float64)
        out[key] = {"calls": sum(g == grad for g in calls.grad), "rows": int(rows.sum()),
                    "mean_batch": round(float(rows.mean()), 1), "median_batch": float(rows.median())}
    return out


@contextlib.contextmanager
def timed():
    """Seconds inside the judge (the function the robust path and judge_rows call) and inside
    the EOT gradients APGD takes, for the duration (filled in as the run goes)."""
    spent, depth = {"seconds_in_judge": 0.0, "seconds_in_gradients": 0.0}, {"judge": 0}
    judge, gradient = semlib.judge.judge, semlib.attacks.apgd.eot_gradient

    def timed_judge(*a, **k):
        depth["judge"] += 1
        start = time.perf_counter()
        try:
            return judge(*a, **k)
        finally:
            depth["judge"] -= 1
            if not depth["judge"]:
                spent["seconds_in_judge"] += time.perf_counter() - start

    def timed_gradient(*a, **k):
        start = time.perf_counter()
        try:
            return gradient(*a, **k)
        finally:
            spent["seconds_in_gradients"] += time.perf_counter() - start
    patches = [(semlib.judge, "judge", timed_judge), (robust, "judge", timed_judge),
               (semlib.attacks.apgd, "eot_gradient", timed_gradient)]
    for module, attr, fn in patches:
        setattr(module, attr, fn)
    try:
        yield spent
    finally:
        for (module, attr, _), orig in zip(patches, (judge, judge, gradient)):
            setattr(module, attr, orig)
        spent.update({k: round(v, 1) for k, v in spent.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--eps", type=float, default=8 / 255)
    ap.add_argument("--norm", default="linf", choices=["linf", "l2"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--eot", type=int, default=4)
    ap.add_argument("--targets", type=int, default=3)
    ap.add_argument("--defenses", default="SEM,F,G,H", help="comma-separated, of " + ",".join(robust.DEFENSES))
    ap.add_argument("--attacks", default=",".join(robust.ATTACKS))
    ap.add_argument("--json", type=Path, help="append the records to this file")
    a = ap.parse_args()
    records = measure(a.images, a.eps, a.norm, a.steps, a.eot, a.targets, a.defenses.split(","),
                      tuple(a.attacks.split(",")), a.preset)
    if a.json:
        old = json.loads(a.json.read_text())["runs"] if a.json.is_file() else []
        a.json.write_text(json.dumps({"cpu_capability": layout.cpu_capability(), "torch": torch.__version__,
                                      "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                                      "runs": old + records}, indent=1) + "\n")


if __name__ == "__main__":
    main()
