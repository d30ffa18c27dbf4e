"""What 06b's fixed-budget robust-accuracy table costs per image on this machine (issue 16's
laptop sizes were chosen from it): for each defense, one :func:`semlib.robust.study_rows` call
on the laptop study's first images at one budget, reporting wall time, EOT gradient passes,
Monte-Carlo votes (clean verdict plus every judged iterate) and how many images stayed robust,
and where the time went: seconds inside the Monte-Carlo judge and inside EOT gradients, and the
sub-model calls with and without gradient with their mean and median batch (rows per call).
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
import semlib.ensemble
import semlib.judge
from semlib import layout, robust
from semlib.params import load_params
from semlib.robust import RobustConfig
from semlib.study import Study


def measure(images: int, eps: float, norm: str, steps: int, eot: int, targets: int, defenses: list[str],
            attacks: tuple[str, ...], preset: str) -> list[dict]:
    params = load_params("06b_adaptive", preset)
    out = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SEMLIB_CACHE"] = cache  # the study's curve cache: nothing reused
        study = Study.from_params(params, n_images=images, shard_size=images)
        models = robust.defense_models(study, defenses)
        cfg = RobustConfig(eps=eps, norm=norm, steps=steps, eot=eot, targets=targets, attacks=attacks,
                           judge=study.cfg.judge(), channels_last=study.cfg.channels_last)
        for name in defenses:
            with watched() as spent:
                start = time.perf_counter()
                rows = robust.study_rows(study, {name: models[name]}, cfg, progress=False)
                seconds = time.perf_counter() - start
            out.append({"defense": name, "images": images, "norm": norm, "eps": eps, "steps": steps, "eot": eot,
                        "targets": targets, "attacks": list(attacks), "seconds": round(seconds, 1),
                        "seconds_per_image": round(seconds / images, 2),
                        "clean_correct": int(rows.clean_correct.sum()), "robust": int(rows.robust.sum()),
                        "gradients": int(rows.gradients.sum()), "votes": int(rows.judge_draws.sum()),
                        "broken_by": {k: int(v) for k, v in rows.broken_by.value_counts().items() if k},
                        **spent.summary()})
            print(json.dumps(out[-1]), flush=True)
    return out


class Spent:
    """Seconds inside the judge and inside EOT gradients; rows of every sub-model call."""

    def __init__(self):
        self.seconds = {"judge": 0.0, "gradients": 0.0}
        self.rows = {True: [], False: []}  # by whether the call builds a gradient

    def summary(self) -> dict:
        out = {f"seconds_in_{k}": round(v, 1) for k, v in self.seconds.items()}
        for grad, rows in self.rows.items():
            r = torch.tensor(rows or [0], dtype=torch.float64)
            out["gradient_calls" if grad else "vote_calls"] = {
                "calls": len(rows), "rows": int(r.sum()), "mean_batch": round(float(r.mean()), 1),
                "median_batch": float(r.median())}
        return out


@contextlib.contextmanager
def watched():
    """Time the judge (the function the robust path and judge_rows call) and the EOT gradient
    APGD calls, and count the rows of every sub-model call, for the duration."""
    spent, depth = Spent(), {"judge": 0}
    judge, gradient, call = semlib.judge.judge, semlib.attacks.apgd.eot_gradient, semlib.ensemble.call_networks

    def timed_judge(*a, **k):
        depth["judge"] += 1
        start = time.perf_counter()
        try:
            return judge(*a, **k)
        finally:
            depth["judge"] -= 1
            if not depth["judge"]:
                spent.seconds["judge"] += time.perf_counter() - start

    def timed_gradient(*a, **k):
        start = time.perf_counter()
        try:
            return gradient(*a, **k)
        finally:
            spent.seconds["gradients"] += time.perf_counter() - start

    def counted(calls):
        spent.rows[torch.is_grad_enabled()].extend(len(x) for _, x in calls)
        return call(calls)
    patches = [(semlib.judge, "judge", timed_judge), (robust, "judge", timed_judge),
               (semlib.attacks.apgd, "eot_gradient", timed_gradient), (semlib.ensemble, "call_networks", counted)]
    for module, attr, fn in patches:
        setattr(module, attr, fn)
    try:
        yield spent
    finally:
        for (module, attr, _), orig in zip(patches, (judge, judge, gradient, call)):
            setattr(module, attr, orig)


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
