"""What batching alone can buy (issue 17's ">= 35% of the GEMM ceiling" and "batch >= 64"): each
architecture of a zoo, called directly at fixed batch sizes, forward without gradients (a
Monte-Carlo vote) and forward + input gradient (an attack pass), in GFLOP/s and as a fraction of
the machine's fp32 GEMM ceiling on the same threads. The collection's line weights every
architecture by its share of the SEM's expected FLOPs per request (its members' inclusion
probabilities), so it is the best a perfectly batched engine could reach on this zoo and CPU.
Run with nothing else busy:

    .venv/bin/python benchmarks/bench_member_ceiling.py [--threads 2] [--channels-last] \
        [--json benchmarks/results/member_ceiling_<kind>.json]

``--channels-last`` calls every network as the engine does since its models load frozen: every
layer channels_last (``semlib.layout.channels_last``, nothing guarded), the input too.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from bench_batches import _flops_per_image, gemm_ceiling
from semlib import layout, robust
from semlib.params import load_params
from semlib.study import Study

BATCHES = (4, 8, 16, 32, 64, 128, 256)


def seconds_per_call(net: torch.nn.Module, b: int, grad: bool, budget: float = 0.4,
                     memory_format: torch.memory_format = torch.contiguous_format) -> float:
    """Mean wall time of one call at batch ``b`` over ``budget`` seconds (after a warm call), the
    input in ``memory_format``."""
    x = torch.rand(b, 3, 32, 32).contiguous(memory_format=memory_format)

    def call() -> None:
        if grad:
            xi = x.clone().requires_grad_(True)
            net(xi).sum().backward()
        else:
            with torch.no_grad():
                net(x)
    return seconds_per(call, budget)


def seconds_per(call, budget: float) -> float:
    """Mean wall time of ``call()`` over ``budget`` seconds, after a warm call."""
    call()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < budget:
        call()
        n += 1
    return (time.perf_counter() - start) / n


def laptop_sem(preset: str = "laptop"):
    """The SEM of ``preset``'s zoo, loaded as notebook 06b loads it (frozen, BatchNorm folded)."""
    study = Study.from_params(load_params("06b_adaptive", preset), n_images=2)
    return robust.defense_models(study, ["SEM"])["SEM"]


def families(sem) -> dict[str, dict]:
    """A SEM's members by architecture (a family's sigma variants share one): their networks
    (``nets``) and the expected number of them per request (``inclusion``)."""
    out: dict[str, dict] = {}
    for name, member, pi in zip(sem.names, sem.members, sem.sampler.inclusion().float().tolist()):
        rec = out.setdefault(name.rsplit("_s", 1)[0], {"nets": [], "inclusion": 0.0})
        rec["nets"].append(member.network or member)
        rec["inclusion"] += pi
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ceiling = gemm_ceiling()
    print(f"GEMM ceiling {ceiling:.1f} GFLOP/s ({layout.cpu_capability()}, {args.threads} threads)", flush=True)
    archs = {arch: {"net": rec["nets"][0], "inclusion": rec["inclusion"]}
             for arch, rec in families(laptop_sem(args.preset)).items()}
    rows = {}
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    for arch, rec in archs.items():
        net, flops = rec["net"], _flops_per_image(rec["net"])
        r = {"gflop_per_image": round(flops / 1e9, 4), "expected_members_per_request": round(rec["inclusion"], 3)}
        for mode, grad, factor in (("vote", False, 1), ("gradient", True, 2)):  # a gradient costs ~2 forwards more
            with layout.channels_last(net, enabled=args.channels_last):
                per = {b: flops * factor * b / seconds_per_call(net, b, grad, memory_format=fmt) / 1e9 for b in BATCHES}
            r[mode] = {str(b): round(v / ceiling, 3) for b, v in per.items()}
        rows[arch] = r
        print(arch, json.dumps(r), flush=True)
    total = {}
    for mode in ("vote", "gradient"):
        for b in BATCHES:  # FLOP-weighted harmonic mean: total FLOPs of one request over its total time
            work = sum(r["expected_members_per_request"] * r["gflop_per_image"] for r in rows.values())
            time_ = sum(r["expected_members_per_request"] * r["gflop_per_image"] / r[mode][str(b)] for r in rows.values())
            total.setdefault(mode, {})[str(b)] = round(work / time_, 3)
    out = {"cpu_capability": layout.cpu_capability(), "torch": torch.__version__, "threads": args.threads,
           "memory_format": "channels_last" if args.channels_last else "contiguous", "zoo": args.preset,
           "gemm_ceiling_gflop_per_s": round(ceiling, 1), "batches": list(BATCHES),
           "collection_fraction_of_ceiling": total, "architectures": rows}
    print("collection", json.dumps(total))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
