"""Does grouping a family's sigma variants pay (issue 17, "group same-architecture members where
it pays, e.g. ``torch.func.stack_module_state`` + ``vmap`` — measure")? For every architecture
of the SEM collection with several members, its members' networks are called on ``b`` rows each
one after the other (today's engine) and as one ``vmap`` over their stacked weights (one call
on ``members x b`` rows), forward without gradients (a vote) and forward + input gradient (an
attack pass); the ratio is separate / vmapped (> 1: vmap pays). The collection's line weights
each architecture by its share of the SEM's expected time per request at that batch. The
outputs agree up to rounding (largest difference reported). Run with nothing else busy:

    .venv/bin/python benchmarks/bench_family_vmap.py [--threads 1] [--json benchmarks/results/family_vmap_<kind>_<threads>.json]
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from torch.func import functional_call, stack_module_state, vmap

from bench_member_ceiling import families, laptop_sem
from semlib import layout

BATCHES = (2, 4, 8, 16, 32)  # rows per member: the engine's calls are 2-20 rows (bench_blocks)


def best_seconds(fn, repeats: int = 5) -> float:
    """The best of ``repeats`` timed calls of ``fn`` after a warm one."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def family_call(nets: list[torch.nn.Module]):
    """``f(X)`` with ``X`` ``[members, b, 3, 32, 32]``: every member on its own rows, one vmapped call."""
    params, buffers = stack_module_state(nets)
    skeleton = copy.deepcopy(nets[0]).to("meta")
    return lambda x: vmap(lambda p, b, xi: functional_call(skeleton, (p, b), (xi,)))(params, buffers, x)


def compare(nets: list[torch.nn.Module], b: int) -> dict:
    grouped = family_call(nets)
    x = torch.rand(len(nets), b, 3, 32, 32)

    def separate(grad: bool):
        xs = [xi.clone().requires_grad_(grad) for xi in x]
        with torch.set_grad_enabled(grad):
            out = [net(xi) for net, xi in zip(nets, xs)]
            if grad:
                torch.autograd.grad(sum(o.sum() for o in out), xs)
        return out

    def together(grad: bool):
        xg = x.clone().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            out = grouped(xg)
            if grad:
                torch.autograd.grad(out.sum(), xg)
        return out

    with torch.no_grad():
        diff = (torch.stack(separate(False)) - together(False)).abs().max().item()
    r = {"max_abs_difference": diff}
    for mode, grad in (("vote", False), ("gradient", True)):
        s, v = best_seconds(lambda: separate(grad)), best_seconds(lambda: together(grad))
        r[mode] = {"separate_ms": round(s * 1e3, 2), "vmap_ms": round(v * 1e3, 2), "ratio": round(s / v, 3)}
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--threads", type=int, default=1, help="1: a pool worker's setting (the default executor)")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = {}
    for arch, rec in families(laptop_sem(args.preset)).items():
        if len(rec["nets"]) < 2:
            continue
        rows[arch] = {"members": len(rec["nets"]), "expected_members_per_request": round(rec["inclusion"], 3),
                      **{str(b): compare(rec["nets"], b) for b in BATCHES}}
        print(arch, rec["nets"].__len__(), {b: (rows[arch][str(b)]["vote"]["ratio"], rows[arch][str(b)]["gradient"]["ratio"])
                                            for b in BATCHES}, flush=True)
    collection = {}
    for mode in ("vote", "gradient"):  # a request's expected time per member call, summed over families
        for b in BATCHES:
            sep = sum(r["expected_members_per_request"] * r[str(b)][mode]["separate_ms"] / r["members"] for r in rows.values())
            vm = sum(r["expected_members_per_request"] * r[str(b)][mode]["vmap_ms"] / r["members"] for r in rows.values())
            collection.setdefault(mode, {})[str(b)] = round(sep / vm, 3)
    out = {"cpu_capability": layout.cpu_capability(), "torch": torch.__version__, "threads": args.threads,
           "zoo": args.preset, "batches_per_member": list(BATCHES), "collection_ratio": collection,
           "families": rows}
    print("collection (separate / vmap; > 1 pays)", json.dumps(collection))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
