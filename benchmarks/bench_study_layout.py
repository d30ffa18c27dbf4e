"""channels_last in the attack and the judge (issue 17): a laptop curve sweep serially with
``STUDY channels_last`` off and on, as a ratio measured in one run (the contiguous run repeated at
the end; the faster of the two counts). Run with nothing else busy:

    .venv/bin/python benchmarks/bench_study_layout.py [--json benchmarks/results/study_layout_<kind>.json]

The two layouts round differently, so distortions may differ by a binary-search step; the share
of identical per-image distortions is reported beside the times.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from semlib import layout
from semlib.study import Study, StudyConfig, specs

SWEEP = dict(n_images=8, steps=5, period=2, eot=2, judge_n=100, search_steps=6, binary_steps=3, shard_size=8)
CURVES = specs("ABFG", ["bim"], ["untargeted"]) + specs("AG", ["pgd"], ["targeted"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    args = ap.parse_args()
    times, rows = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for run, cl in (("contiguous", False), ("channels_last", True), ("contiguous_again", False)):
            study = Study("laptop", StudyConfig.from_dict({**SWEEP, "channels_last": cl}), threshold=0.2,
                          cache_dir=Path(tmp) / run)
            start = time.perf_counter()
            rows[run] = study.curves(CURVES, progress=False)
            times[run] = time.perf_counter() - start
            print(run, round(times[run], 1), flush=True)
    best = min(times["contiguous"], times["contiguous_again"])
    same = (rows["contiguous"].distortion.fillna(-1) == rows["channels_last"].distortion.fillna(-1)).mean()
    out = {"cpu_capability": layout.cpu_capability(), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "curves": len(CURVES), "images": SWEEP["n_images"], **{f"{k}_s": round(v, 1) for k, v in times.items()},
           "speedup": round(best / times["channels_last"], 2), "identical_distortions": round(float(same), 3)}
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
