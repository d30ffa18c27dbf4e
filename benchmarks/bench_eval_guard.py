"""What the strided-1x1 guard cost evaluation, now that evaluation models are frozen (issue 17):
``semlib.layout.channels_last`` keeps a strided 1x1 convolution NCHW only where its weight
gradient can be asked for (oneDNN's broken kernel computes weight gradients), and
``semlib.checkpoints`` loads every model frozen, so attacks and judges run every layer
channels_last. ``guard`` is the engine before (every exposed layer NCHW: the layout.guarded of
before, patched in by ``SEMLIB_BENCH_GUARD=exposed`` at this file's import, which the pool's
spawned workers repeat); ``frozen`` is today's.

Two measurements, with nothing else busy:

- members: every laptop SEM architecture with an exposed layer, one thread (a pool worker), a
  vote (forward) and an attack pass (forward + input gradient) at batches 4-32, guard vs frozen
  alternated, median of three; and the SEM's request time ratio at each batch, every
  architecture weighted by its expected members per request (those without an exposed layer
  count at ratio 1);
- workloads: bench_primitive_cache's ``robust`` (APGD-CE on the SEM, Linf 4/255, 10 x 32, 50
  images, 2 blocks) and ``curves`` (six laptop-like curves, 40 images, 2 blocks) on the default
  pool, each run a fresh process from an empty cache, the modes alternating; wall, GFLOP/s of the
  2-thread GEMM ceiling, and how many per-image rows agree (floating-point order may move a vote).

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/bench_eval_guard.py \\
        --json benchmarks/results/eval_guard_<kind>.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import semlib
from semlib import layout

GUARD_ENV = "SEMLIB_BENCH_GUARD"
if os.environ.get(GUARD_ENV) == "exposed":  # the engine before: here and in every spawned worker
    layout.guarded = layout.exposed
BATCHES = (4, 8, 16, 32)


def timed(net, b: int, grad: bool, mode: str) -> float:
    import contextlib

    import torch

    from bench_member_ceiling import seconds_per_call
    from bench_study_ratio import full_guard

    with full_guard() if mode == "guard" else contextlib.nullcontext(), layout.channels_last(net):
        return seconds_per_call(net, b, grad, 0.3, torch.channels_last)  # the input as the engine feeds it


def members() -> dict:
    import torch

    from bench_member_ceiling import families, laptop_sem

    torch.set_num_threads(1)
    out, request = {}, {}
    for arch, rec in families(laptop_sem()).items():
        net, weight = rec["nets"][0], rec["inclusion"]
        exposed = any(layout.exposed(m) for m in net.modules())
        for mode_name, grad in (("vote", False), ("gradient", True)):
            for b in BATCHES:
                if exposed:
                    runs = {m: [] for m in ("guard", "frozen")}
                    for _ in range(3):
                        for m in runs:
                            runs[m].append(timed(net, b, grad, m))
                    t = {m: statistics.median(v) for m, v in runs.items()}
                    out.setdefault(arch, {"expected_members_per_request": round(weight, 3)}).setdefault(
                        mode_name, {})[str(b)] = round(t["guard"] / t["frozen"], 3)
                else:
                    t = dict.fromkeys(("guard", "frozen"), timed(net, b, grad, "frozen"))
                cell = request.setdefault(mode_name, {}).setdefault(str(b), {"guard": 0.0, "frozen": 0.0})
                for m in cell:
                    cell[m] += weight * t[m]
        print(arch, json.dumps(out.get(arch, "no exposed layer")), flush=True)
    sem_ratio = {mode: {b: round(c["guard"] / c["frozen"], 3) for b, c in by_b.items()} for mode, by_b in request.items()}
    print("SEM request, guard / frozen", json.dumps(sem_ratio), flush=True)
    return {"architectures": out, "sem_request_ratio": sem_ratio}


def workload(name: str, mode: str, ceiling: float, rows_dir: Path) -> dict:
    from bench_study_ratio import fresh_process

    os.environ[GUARD_ENV] = "exposed" if mode == "guard" else "frozen"
    try:
        record = fresh_process(__file__, ["--child", name, "--rows", str(rows_dir / f"{name} {mode}.csv")],
                               semlib.PRIMITIVE_CACHE)
    finally:
        os.environ.pop(GUARD_ENV)
    per_s = record["gflop"] / record["wall_s"]
    return {"mode": mode, **record, "gflop_per_s": round(per_s, 1), "of_ceiling": round(per_s / ceiling, 3)}


def _worker_guard(_: int) -> bool:
    return layout.guarded is layout.exposed


def child(name: str, rows_path: Path) -> dict:
    """bench_primitive_cache's workload ``name`` here, its rows written to ``rows_path``; records
    the guard this process and the pool's workers run with."""
    from bench_primitive_cache import child as run_workload
    from semlib import runner

    workers = runner.run(_worker_guard, [(0,), (1,)], runner.Executor(kind="local"), progress=False)
    mine = _worker_guard(0)
    if set(workers) != {mine}:
        raise RuntimeError(f"the pool's workers run another guard ({workers}) than this process ({mine})")
    return {**run_workload(name, rows_path), "guard": "exposed" if mine else "frozen"}


def agreement(a: Path, b: Path) -> float:
    import pandas as pd

    x, y = (pd.read_csv(p, dtype=str, keep_default_na=False) for p in (a, b))
    return float((x == y).all(axis=1).mean()) if x.shape == y.shape else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--workloads", default="robust,curves")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--skip-members", action="store_true")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.rows)))
        return
    import torch

    from bench_batches import gemm_ceiling

    torch.set_num_threads(2)
    ceiling = gemm_ceiling()
    print(f"GEMM ceiling {ceiling:.1f} GFLOP/s ({layout.cpu_capability()}, 2 threads)", flush=True)
    out = {"cpu_capability": layout.cpu_capability(), "torch": torch.__version__, "cpus": os.cpu_count(),
           "gemm_ceiling_gflop_per_s": round(ceiling, 1)}
    if not a.skip_members:
        out["members_1thread"] = members()
        torch.set_num_threads(2)
    out["workloads"] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in [w for w in a.workloads.split(",") if w]:
            runs = []
            for r in range(a.repeats):
                rows_dir = Path(tmp) / str(r)
                rows_dir.mkdir(exist_ok=True)
                for mode in ("guard", "frozen"):
                    runs.append(workload(name, mode, ceiling, rows_dir))
                    print(name, json.dumps(runs[-1]), flush=True)
                runs[-1]["rows_agree_with_guard"] = agreement(rows_dir / f"{name} guard.csv",
                                                              rows_dir / f"{name} frozen.csv")
            med = {m: statistics.median(x["wall_s"] for x in runs if x["mode"] == m) for m in ("guard", "frozen")}
            out["workloads"][name] = {"runs": runs, "median_wall_s": med,
                                      "speedup": round(med["guard"] / med["frozen"], 3)}
            print(name, "guard / frozen", out["workloads"][name]["speedup"], flush=True)
    print(json.dumps(out, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
