"""Serial versus Ray (2 single-thread workers) on a smoke and a laptop curve sweep, as ratios
measured in one run (issue 7). Run with nothing else busy:

    .venv/bin/python benchmarks/bench_ray.py [--json benchmarks/results/ray.json]

Each sweep starts from an empty curve cache (a temporary folder) both times; the serial run uses
this process with torch's default threads (2 here), the Ray run a local ``ray.init(num_cpus=2)``; the serial run is repeated after the Ray run
and the speed-up uses the faster of the two; Ray's
start-up time is reported apart. The two runs' CSVs are compared byte for byte.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from semlib import runner
from semlib.study import Study, StudyConfig, specs

SWEEPS = {
    "smoke": ("smoke", 0.0, dict(n_images=8, steps=2, eot=1, judge_n=4, search_steps=3, binary_steps=2, eps0=0.01,
                                 shard_size=4), specs("ABCDFGHI", ["bim", "pgd"], ["untargeted"])),
    "laptop": ("laptop", 0.2, dict(n_images=8, steps=5, eot=2, judge_n=20, search_steps=6, binary_steps=3,
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
    ex = runner.Executor(kind="ray", num_cpus=2, cpus_per_task=1)
    out = {"machine": platform.processor() or platform.machine(), "torch_threads_serial": torch.get_num_threads(),
           "ray_startup_s": round(startup, 1), "sweeps": {}}
    for name, (zoo_name, threshold, raw, curve_specs) in SWEEPS.items():
        cfg = StudyConfig.from_dict(raw)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            times = {}
            for kind in ("serial", "ray", "serial_again"):  # serial twice: warm-up effects show up
                study = Study(zoo_name, cfg, threshold=threshold, cache_dir=tmp / kind)
                start = time.perf_counter()
                study.curves(curve_specs, progress=False, executor=ex if kind == "ray" else None)
                times[kind] = time.perf_counter() - start
            same = sorted(p.read_bytes() for p in (tmp / "serial").glob("*.csv")) == sorted(
                p.read_bytes() for p in (tmp / "ray").glob("*.csv"))
        n_tasks = len(curve_specs) * -(-cfg.n_images // cfg.shard_size)
        best = min(times["serial"], times["serial_again"])
        out["sweeps"][name] = {"curves": len(curve_specs), "tasks": n_tasks, "serial_s": round(times["serial"], 1),
                               "serial_again_s": round(times["serial_again"], 1), "ray_s": round(times["ray"], 1),
                               "speedup": round(best / times["ray"], 2), "byte_identical": same}
        print(name, out["sweeps"][name], flush=True)
    ray.shutdown()
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
