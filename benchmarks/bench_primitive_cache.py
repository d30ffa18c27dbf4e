"""What keeping oneDNN's compiled primitives buys (issue 17, ``semlib.PRIMITIVE_CACHE``): the same
work on the default executor (the local pool of single-thread workers, as ``make reproduce`` runs
it) with oneDNN's default cache of 1,024 primitives and with semlib's, each run in a fresh process
(oneDNN reads the capacity when it compiles its first primitive) from an empty cache of results,
the capacities alternating run by run. Reports each run's wall time (from the study's models, loaded
in the parent, to its rows: the pool's workers load theirs inside it), its GFLOP/s (the work its rows
record, priced as bench_laptop_work prices it) as a fraction of the 2-thread GEMM ceiling measured at
the start, its peak memory (the largest process: the parent or a pool worker), the median ratio per
workload, and whether every run's per-image rows are identical. Workloads (laptop zoo): ``robust``,
APGD-CE on the SEM at Linf 4/255 with 32 EOT samples (the convergence sweep's and ``STRONGEST``'s
setting, 68% of the laptop's work), a pool task per block; ``curves``, six laptop-like curves
(bench_curve_blocks), a task per block.
Run it with nothing else busy:

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/bench_primitive_cache.py \\
        --json benchmarks/results/primitive_cache_<kind>.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import time
from pathlib import Path

import semlib

WORKLOADS = {"robust": dict(images=50, shard=25, block=25, steps=10, eot=32),  # robust_part: shards of 25
             "curves": dict(images=40, shard=10, block=20)}


def child(workload: str, rows_path: Path | None = None) -> dict:
    """One run of ``workload`` here (this process was started with the capacity to measure); its
    rows' CSV also goes to ``rows_path`` when given."""
    import torch

    from bench_curve_blocks import COLUMNS as CURVE_COLUMNS, CURVES, SWEEP
    from bench_laptop_work import curve_gflop, curve_prices, fresh_cache
    from bench_study_ratio import robust_part
    from semlib import layout, runner
    from semlib.study import Study, StudyConfig

    w, executor = WORKLOADS[workload], runner.Executor(kind="local")
    with fresh_cache() as cache:
        if workload == "robust":  # bench_study_ratio's robust part, on the SEM alone
            engine = {"executor": executor, "robust_block": w["block"]}
            rows, wall, gflop = robust_part(engine, w["images"], ["SEM"], dict(
                eps=4 / 255, norm="linf", steps=w["steps"], eot=w["eot"], attacks=("apgd-ce",)), "laptop")
            columns = list(rows.columns)
        else:
            study = Study("laptop", StudyConfig.from_dict({**SWEEP, "n_images": w["images"], "shard_size": w["shard"],
                                                          "block": w["block"]}), threshold=0.2, cache_dir=Path(cache))
            study.defenses("sem")  # the models, loaded here as robust_part loads them: outside the timing
            start = time.perf_counter()
            rows, columns = study.curves(CURVES, progress=False, executor=executor), CURVE_COLUMNS
            wall = time.perf_counter() - start  # pricing runs the networks: after the timing
            gflop = curve_gflop(rows, curve_prices(study, rows[["scenario", "variant"]].drop_duplicates())).sum()
    rows = rows[columns].sort_values(["label", "example"]).reset_index(drop=True)
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    text = rows.to_csv(index=False)
    if rows_path is not None:
        rows_path.write_text(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return {"wall_s": round(wall, 1), "gflop": round(float(gflop), 1), "peak_rss_mb": round(peak / 1024),
            "rows_sha256": digest, "cpu_capability": layout.cpu_capability(), "torch": torch.__version__}


def run(workload: str, capacity: int, ceiling: float) -> dict:
    from bench_study_ratio import fresh_process

    record = fresh_process(__file__, ["--child", workload], capacity)
    per_s = record["gflop"] / record["wall_s"]
    return {"capacity": capacity, **record, "gflop_per_s": round(per_s, 1), "of_ceiling": round(per_s / ceiling, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", choices=list(WORKLOADS), help=argparse.SUPPRESS)
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child)))
        return
    import torch

    from bench_batches import gemm_ceiling
    from bench_study_ratio import ONEDNN_DEFAULT

    torch.set_num_threads(2)
    ceiling = gemm_ceiling()
    print(f"GEMM ceiling {ceiling:.1f} GFLOP/s (2 threads)", flush=True)
    capacities, results = (ONEDNN_DEFAULT, semlib.PRIMITIVE_CACHE), {}
    for workload in a.workloads.split(","):
        runs = []
        for _ in range(a.repeats):
            for capacity in capacities:
                runs.append(run(workload, capacity, ceiling))
                print(workload, json.dumps(runs[-1]), flush=True)
        median = {c: round(statistics.median(r["wall_s"] for r in runs if r["capacity"] == c), 1) for c in capacities}
        of_ceiling = {c: round(statistics.median(r["of_ceiling"] for r in runs if r["capacity"] == c), 3)
                      for c in capacities}
        results[workload] = {**WORKLOADS[workload], "runs": runs, "median_wall_s": median, "median_of_ceiling": of_ceiling,
                             "speedup": round(median[capacities[0]] / median[capacities[1]], 2),
                             "rows_identical": len({r["rows_sha256"] for r in runs}) == 1}
        print(workload, "speed-up", results[workload]["speedup"], "rows identical", results[workload]["rows_identical"],
              flush=True)
    out = {"cpu_capability": runs[0]["cpu_capability"], "torch": runs[0]["torch"], "cpus": os.cpu_count(),
           "gemm_ceiling_gflop_per_s": round(ceiling, 1),
           "executor": "local pool, a single-thread worker per core", "capacities": capacities, "workloads": results}
    print(json.dumps(out, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
