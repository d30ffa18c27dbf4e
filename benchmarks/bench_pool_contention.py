"""What two single-thread workers cost each other (issue 17: why the default pool gains less on
one CPU kind than on another). The laptop SEM's architectures (one network per family, weighted
by its expected members per request), a vote (forward) and an attack pass (forward + input
gradient) at a few batch sizes, each timed by single-thread worker processes: one alone, then two
at once on the same call (barriers start them together), alternated, median of ``--repeats``.
The 2048² ``torch.mm`` is timed the same way. A slowdown above 1 is time lost to what the two
cores share (memory bandwidth, caches, the clock under load); the pool's gain over one worker is
at most 2 / slowdown.

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/bench_pool_contention.py \\
        --json benchmarks/results/pool_contention_<kind>.json
"""
from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import statistics
from pathlib import Path
from queue import Empty

BATCHES = (4, 16, 64)
MODES = (("vote", False), ("gradient", True))


def nets(stack: contextlib.ExitStack) -> dict:
    """The laptop SEM's networks, one per architecture, channels_last as the engine runs a frozen
    model (every layer NHWC) while ``stack`` is open, with their expected members per request."""
    import torch

    from bench_member_ceiling import families, laptop_sem
    from semlib import layout

    torch.set_num_threads(1)
    out = {}
    for arch, rec in families(laptop_sem()).items():
        net = rec["nets"][0]
        stack.enter_context(layout.channels_last(net))
        out[arch] = (net, rec["inclusion"])
    return out


def worker(barrier, queue, plan: list[tuple[str, str, int]], budget: float) -> None:
    import torch

    from bench_member_ceiling import seconds_per, seconds_per_call

    torch.set_num_threads(1)
    stack = contextlib.ExitStack()
    models = nets(stack)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    out = []
    for arch, mode, size in plan:
        barrier.wait()  # both workers start each call together
        if arch == "mm":
            out.append(seconds_per(lambda: torch.mm(a, b), budget))
        else:
            out.append(seconds_per_call(models[arch][0], size, mode == "gradient", budget, torch.channels_last))
    stack.close()
    queue.put(out)


def run(workers: int, plan, budget: float) -> list[float]:
    """Seconds per call of every item of ``plan``, the mean over ``workers`` concurrent processes."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(barrier, queue, plan, budget)) for _ in range(workers)]
    for p in procs:
        p.start()
    results = []
    while len(results) < workers:
        try:
            results.append(queue.get(timeout=5))
        except Empty:
            if any(p.exitcode not in (None, 0) for p in procs):  # a worker died: stop, do not wait forever
                for p in procs:
                    p.terminate()
                raise RuntimeError(f"a timing worker failed (exit codes {[p.exitcode for p in procs]})") from None
    for p in procs:
        p.join()
    return [statistics.mean(r[i] for r in results) for i in range(len(plan))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budget", type=float, default=0.3)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    import torch

    from semlib import layout

    from bench_member_ceiling import families, laptop_sem

    weights = {arch: rec["inclusion"] for arch, rec in families(laptop_sem()).items()}
    plan = [("mm", "mm", 2048)] + [(arch, mode, b) for arch in weights for mode, _ in MODES for b in BATCHES]
    runs: dict[int, list[list[float]]] = {1: [], 2: []}
    for r in range(a.repeats):
        for workers in (1, 2):
            runs[workers].append(run(workers, plan, a.budget))
            print(f"repeat {r + 1}, {workers} worker(s) done", flush=True)
    med = {w: [statistics.median(rep[i] for rep in runs[w]) for i in range(len(plan))] for w in runs}
    slow = {f"{arch} {mode} {size}": round(med[2][i] / med[1][i], 3) for i, (arch, mode, size) in enumerate(plan)}
    request = {}
    for mode, _ in MODES:  # the SEM's request: its architectures' times weighted by expected members
        for size in BATCHES:
            idx = [i for i, (arch, m, s) in enumerate(plan) if m == mode and s == size]
            alone = sum(weights[plan[i][0]] * med[1][i] for i in idx)
            both = sum(weights[plan[i][0]] * med[2][i] for i in idx)
            request[f"{mode} {size}"] = round(both / alone, 3)
    out = {"cpu_capability": layout.cpu_capability(), "torch": torch.__version__, "repeats": a.repeats,
           "budget_s": a.budget, "mm_2048_gflop_per_s_alone": round(2 * 2048 ** 3 / med[1][0] / 1e9, 1),
           "mm_2048_gflop_per_s_each_of_two": round(2 * 2048 ** 3 / med[2][0] / 1e9, 1),
           "sem_request_slowdown": request, "slowdown": slow}
    print(json.dumps(out, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
