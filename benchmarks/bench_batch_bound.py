"""How large a sub-model call can get at all (issue 17's "mean batch >= 64"): the laptop's workloads
recorded pass by pass, and the mean batch per sub-model call that *any* engine could reach on the
same rows.

A computation (a curve, or a defense's robust rows on a block: a thread of ``semlib.batching``, or
the one computation of a pool task) hands its network calls over in *bundles*: a SEM pass hands
every drawn member's rows at once. Its bundles are sequential: each attack step needs the previous
step's gradient, each Monte-Carlo round the previous round's counts (the exact early stop). So an
engine that keeps every computation's order and calls each network once per bundle at best (one
call of a network can serve the bundles of different computations, never two bundles of one) makes
at least ``max over computations (bundles of it that use network m)`` calls of network m, per pass
kind (a vote and an attack pass are different calls). Dividing the rows by that gives an upper
bound on the mean batch, reported:

- ``measured``: the engine's own calls (every network call, forward hooks);
- ``bound, per task``: the bound within each pool task (today's tasks: a block of a curve set, or a
  defense on a block), i.e. a perfect lock-step engine with the laptop's layout;
- ``bound, one task``: the bound if every task of the workload were merged into one (no pool
  parallelism left), the most any batching of these rows could give.

The SEM's dilution, exactly: ``R`` requests in one pass reach sub-model m with probability ``p_m``
each (its inclusion probability), so one call per member sees on average
``R sum(p) / sum(1 - (1 - p_m)^R)`` rows (expected rows over expected calls); the table for R up to
6,400 and the R at which it reaches 64.

Runs serially in this process (the pool's tasks one after the other: the same rows, per-request
streams); times are not the point (they include the recording's hooks). The robust workload is
recorded defense by defense (its pool tasks are per defense and block), so its "one task" merges a
defense's blocks. Bundles larger than the engine's chunk (judge 256 x fanout votes,
attack 256 x min(fanout, 4)) would be split into several calls; the record says whether any was.

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/bench_batch_bound.py \\
        --json benchmarks/results/batch_bound_<kind>.json
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from collections import defaultdict
from pathlib import Path

import torch

from bench_curve_blocks import CURVES, SWEEP
from bench_laptop_work import fresh_cache
from semlib import batching, ensemble, layout, robust, runner, smoothing
from semlib.params import load_params
from semlib.robust import RobustConfig
from semlib.study import Study, StudyConfig


class Recorder:
    """Every bundle handed to ``call_networks`` (task, computation, pass kind, rows per network) and
    every network call actually made (rows, kind)."""

    def __init__(self):
        self.task = ""
        self.bundles: list[tuple[str, tuple, bool, dict[int, int]]] = []
        self.calls: list[tuple[int, bool]] = []
        self._hooked: dict[int, torch.utils.hooks.RemovableHandle] = {}  # a forward hook per network seen
        self._schedulers: list = []  # held, so no id is reused
        self._lock = threading.Lock()
        self._original = batching.call_networks

    def __enter__(self):
        def recorded(calls):
            scheduler = getattr(batching._local, "scheduler", None)
            grad = torch.is_grad_enabled() and any(x.requires_grad for _, x in calls)
            rows: dict[int, int] = defaultdict(int)
            with self._lock:
                for net, x in calls:
                    rows[id(net)] += len(x)
                    if id(net) not in self._hooked:
                        self._hooked[id(net)] = net.register_forward_hook(self._call)
                if scheduler is not None and (not self._schedulers or self._schedulers[-1] is not scheduler):
                    self._schedulers.append(scheduler)
                # a pool task is one batched run (a block's computations together) or, alone, one computation
                run = len(self._schedulers) if scheduler is not None else 0
                thread = batching._local.thread if scheduler is not None else 0
                self.bundles.append(((self.task, run), thread, grad, dict(rows)))
            return self._original(calls)

        ensemble.call_networks = smoothing.call_networks = recorded
        return self

    def _call(self, module, args, out) -> None:
        with self._lock:
            self.calls.append((len(args[0]), torch.is_grad_enabled()))

    def __exit__(self, *exc):
        ensemble.call_networks = smoothing.call_networks = self._original
        for handle in self._hooked.values():
            handle.remove()
        self._hooked = {}


def bound(bundles, grad: bool, merge_tasks: bool) -> dict:
    """Rows, the fewest calls any order-keeping engine makes, and their ratio, for one pass kind."""
    per: dict[tuple, dict[int, int]] = defaultdict(lambda: defaultdict(int))  # (group, net) -> computation -> bundles
    rows = 0
    for task, thread, g, by_net in bundles:
        if g != grad:
            continue
        group = "" if merge_tasks else task
        for net, n in by_net.items():
            per[(group, net)][(task, thread)] += 1
            rows += n
    calls = sum(max(c.values()) for c in per.values())
    return {"rows": rows, "calls": calls, "mean_batch": round(rows / calls, 1) if calls else None}


def measured(calls, grad: bool) -> dict:
    rows = [n for n, g in calls if g == grad]
    t = torch.tensor(rows, dtype=torch.float64)
    return {"rows": int(t.sum()), "calls": len(rows), "mean_batch": round(float(t.mean()), 1) if rows else None,
            "median_batch": float(t.median()) if rows else None}


def summary(rec: Recorder, label: str, seconds: float) -> dict:
    bundle_rows = [sum(b[3].values()) for b in rec.bundles]
    out = {"seconds": round(seconds, 1), "bundles": len(rec.bundles),
           "largest_bundle_rows": max(bundle_rows) if bundle_rows else 0}
    for kind, grad in (("votes", False), ("gradients", True)):
        out[kind] = {"measured": measured(rec.calls, grad), "bound, per task": bound(rec.bundles, grad, False),
                     "bound, one task": bound(rec.bundles, grad, True)}
    print(label, json.dumps(out), flush=True)
    return out


def dilution(sem) -> dict:
    """Expected rows per member call of one SEM pass of R requests, and the R that reaches 64."""
    p = sem.sampler.inclusion()

    def mean(r: int) -> float:
        return float(r * p.sum() / (1 - (1 - p) ** r).sum())
    table = {str(r): round(mean(r), 1) for r in (25, 50, 100, 200, 400, 800, 1600, 3200, 6400)}
    r = 1
    while mean(r) < 64:
        r += 1
    return {"members": len(p), "expected_members_per_request": round(float(p.sum()), 3),
            "mean_rows_per_member_call": table, "requests_for_64": r}


def curves(rec: Recorder, images: int, shard: int, block: int) -> dict:
    study = Study("laptop", StudyConfig.from_dict({**SWEEP, "n_images": images, "shard_size": shard, "block": block}),
                  threshold=0.2)
    study.defenses("sem")
    start = time.perf_counter()
    with rec:
        rec.task = "curves"
        study.curves(CURVES, progress=False, executor=runner.Executor(kind="serial"))
    return summary(rec, "curves", time.perf_counter() - start)


def strongest(rec: Recorder, images: int, shard: int, block: int, steps: int, defenses: list[str]) -> dict:
    study = Study.from_params(load_params("06b_adaptive", "laptop"), n_images=images, shard_size=shard, block=block)
    cfg = RobustConfig(judge=study.cfg.judge(), channels_last=study.cfg.channels_last, eps=4 / 255, norm="linf",
                       steps=steps, eot=32, attacks=("apgd-ce",))
    models = robust.defense_models(study, defenses)
    out = {}
    for name, model in models.items():
        rec.bundles, rec.calls = [], []
        start = time.perf_counter()
        with rec:
            rec.task = name
            robust.study_rows(study, {name: model}, cfg, progress=False, executor=runner.Executor(kind="serial"))
        out[name] = summary(rec, name, time.perf_counter() - start)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--curve-images", type=int, default=40)
    ap.add_argument("--strong-images", type=int, default=50)
    ap.add_argument("--strong-steps", type=int, default=40)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    study = Study.from_params(load_params("06b_adaptive", "laptop"), n_images=2)
    sem = robust.defense_models(study, ["SEM"])["SEM"]
    out = {"cpu_capability": layout.cpu_capability(), "torch": torch.__version__, "zoo": "laptop",
           "sem_dilution": dilution(sem)}
    print("SEM dilution", json.dumps(out["sem_dilution"]), flush=True)
    laptop = study.cfg
    with fresh_cache():
        out["curves"] = {"images": a.curve_images, "shard": laptop.shard_size, "block": a.curve_images // 2,
                         "curves": [f"{c.scenario} {c.attack} {c.goal}" for c in CURVES], **SWEEP,
                         "result": curves(Recorder(), a.curve_images, laptop.shard_size, a.curve_images // 2)}
        out["strongest"] = {"images": a.strong_images, "shard": laptop.shard_size, "block": laptop.block,
                            "steps": a.strong_steps, "eot": 32, "eps": "4/255",
                            "result": strongest(Recorder(), a.strong_images, laptop.shard_size, laptop.block,
                                                a.strong_steps, ["SEM", "F"])}
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
