"""Serial versus the local pool (the default executor) versus Ray, 2 single-thread workers each,
on a smoke and a laptop curve sweep, as ratios measured in one run (issues 7 and 17). Run with
nothing else busy:

    .venv/bin/python benchmarks/bench_ray.py [--json benchmarks/results/ray.json]

Each sweep starts from an empty curve cache (a temporary folder) both times; the serial run uses
this process with torch's default threads (2 here); the local pool spawns its 2 workers within its
timed run (start-up included); the Ray run uses a local ``ray.init(num_cpus=2)`` whose start-up
is reported apart. The serial run is repeated at the end and the speed-ups use the faster of the
two. Every run's CSVs are compared byte for byte with the serial run's.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from semlib import layout, runner
from semlib.study import Study, StudyConfig, specs

SWEEPS = {
    "smoke": ("smoke", 0.0, dict(n_images=8, steps=2, period=1, eot=1, judge_n=4, search_steps=3, binary_steps=2, eps0=0.01,
                                 shard_size=4), specs("ABCDFGHI", ["bim", "pgd"], ["untargeted"])),
    "laptop": ("laptop", 0.2, dict(n_images=8, steps=5, period=2, eot=2, judge_n=20, search_steps=6, binary_steps=3,
                                   shard_size=4), specs("ABFG", ["bim"], ["untargeted"])),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    args = ap.parse_args()
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - t0
    executors = {"ray": runner.Executor(kind="ray", num_cpus=2, cpus_per_task=1),
                 "local": runner.Executor(kind="local", num_cpus=2, cpus_per_task=1)}
    out = {"machine": platform.processor() or platform.machine(), "cpu_capability": layout.cpu_capability(),
           "torch_threads_serial": torch.get_num_threads(),
           "ray_startup_s": round(startup, 1), "sweeps": {}}
    for name, (zoo_name, threshold, raw, curve_specs) in SWEEPS.items():
        cfg = StudyConfig.from_dict(raw)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            times = {}
            for kind in ("serial", "local", "ray", "serial_again"):  # serial twice: warm-up effects show up
                study = Study(zoo_name, cfg, threshold=threshold, cache_dir=tmp / kind)
                start = time.perf_counter()
                study.curves(curve_specs, progress=False, executor=executors.get(kind))
                times[kind] = time.perf_counter() - start
            csvs = {k: sorted(p.read_bytes() for p in (tmp / k).glob("*.csv")) for k in times}
            same = all(csvs[k] == csvs["serial"] for k in csvs)
        n_tasks = len(curve_specs) * -(-cfg.n_images // cfg.shard_size)
        best = min(times["serial"], times["serial_again"])
        out["sweeps"][name] = {"curves": len(curve_specs), "tasks": n_tasks, "serial_s": round(times["serial"], 1),
                               "serial_again_s": round(times["serial_again"], 1), "local_s": round(times["local"], 1),
                               "ray_s": round(times["ray"], 1), "speedup_local": round(best / times["local"], 2),
                               "speedup_ray": round(best / times["ray"], 2), "byte_identical": same}
        print(name, out["sweeps"][name], flush=True)
    ray.shutdown()
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
