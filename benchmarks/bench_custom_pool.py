"""Notebook 08's custom SEMs (its GRID) in the kernel versus as local-pool tasks (issue 17), as a
ratio measured in one run. Run with nothing else busy:

    .venv/bin/python benchmarks/bench_custom_pool.py [--images 20] [--json benchmarks/results/custom_pool.json]

Two custom SEMs of the laptop grid (K 1..1 and sigma 0.25 only), BIM untargeted, on the laptop
STUDY's settings for ``--images`` images in shards of 10, each run from an empty curve cache (a
temporary folder): serial (this process, torch's default threads) then the local pool of
single-thread workers (start-up included). The two runs' CSVs are compared byte for byte.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from semlib import explore, runner
from semlib.params import load_params
from semlib.study import Study, StudyConfig, specs

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--json")
    args = ap.parse_args()
    params = {**load_params("08_explore", "laptop", ROOT), "PRESET": "laptop"}
    times, csvs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for how, executor in (("serial", None), ("local", runner.Executor(kind="local"))):
            cfg = StudyConfig.from_dict({**params["STUDY"], "n_images": args.images, "shard_size": 10})
            study = Study(params["ZOO"], cfg, threshold=params["THRESHOLD"], cache_dir=Path(tmp) / how)
            sigmas = tuple(float(s) for s in study.spec.sigmas)
            variants = [explore.variant_for(study, explore.Settings(k_range=(1, 1), sigmas=sigmas)),
                        explore.variant_for(study, explore.Settings(k_range=(1, 4), sigmas=(0.25,)))]
            curves = [s for v in variants for s in specs("A", ["bim"], ["untargeted"], variant=v)]
            start = time.perf_counter()
            study.curves(curves, progress=False, executor=executor)
            times[how] = time.perf_counter() - start
            csvs[how] = {p.name: p.read_bytes() for p in sorted((Path(tmp) / how).rglob("*.csv"))}
            print(f"{how:<7} {times[how]:7.1f} s ({len(curves)} curves, {args.images} images)", flush=True)
    record = {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "machine": platform.machine(),
              "threads": torch.get_num_threads(), "images": args.images, "seconds": {k: round(v, 1) for k, v in times.items()},
              "speedup_local": round(times["serial"] / times["local"], 2),
              "identical_csvs": csvs["serial"] == csvs["local"] and len(csvs["serial"]) > 0}
    print(json.dumps(record, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
