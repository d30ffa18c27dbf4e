"""Issue 17's whole-study ratio: a laptop-like study computed from an empty cache by the engine
before issue 17 and by today's default, on the same settings and seeds, in one run.

The study has three parts, the three kinds of work of the laptop preset (the laptop ``STUDY``
settings, fewer images):

- ``curves``: six ASR curves (attackers A and B, contrasts F and G, BIM untargeted; A and G,
  PGD targeted) on ``--curve-images`` images in the preset's shards of 10;
- ``robust table``: 06b's fixed-budget table at Linf 4/255 (every attack, 20 x 4) for the SEM, F
  and G on ``--robust-images`` images in shards of 25;
- ``strongest``: APGD-CE at ``--strong-steps`` x 32 (a twentieth of STRONGEST's iterations) for
  the SEM and F on ``--strong-images`` images in shards of 25, the long-budget work of the
  convergence sweep and STRONGEST.

Engines (both today's code, whose per-request streams make the draws the same, so every
per-image row must be identical; the old code drew from a shared generator and is not rerun):

- ``before``: what issue 17 measured: the serial executor (one process, 2 torch threads, as
  ``make reproduce`` ran), oneDNN's own primitive cache of 1,024, every pass of a SEM capped at the
  single-model chunk (no fanout), every strided 1x1 convolution NCHW (the layout guard on models
  that were not frozen), the curves one at a time, each shard its own batch;
- ``today``: the default local pool of single-thread workers, ``semlib.PRIMITIVE_CACHE``, the SEM's
  fanout, a block's curves together, blocks of shards as one batch. Each part gives the pool two
  tasks, as the laptop gives it several: the curves' block is half the images (the laptop's 50 of
  100), the robust parts' a shard of 25 (the laptop's 500-image tables: 10 blocks of 50 per defense
  and budget), a task per block with its defenses together.

Each engine runs in a fresh process of its own (oneDNN reads its cache's capacity once, at its first
primitive), from an empty cache of results; the parent compares their rows.

Each part's work is priced in FLOPs from its rows (:mod:`bench_laptop_work`), which gives the
GFLOP/s of each engine and its fraction of the 2-thread GEMM ceiling; the laptop-weighted ratio
combines the parts' ratios by the laptop tables' own work shares
(``benchmarks/results/laptop_work_avx512.json``; FLOPs do not depend on the CPU kind). Run it with nothing else busy:

    PYTHONPATH=benchmarks .venv/bin/python benchmarks/bench_study_ratio.py --json benchmarks/results/study_ratio_<kind>.json

or part by part (``--parts``, a ``--json`` each), then ``--merge`` their records into one with the
weighted ratio (how the AVX2 kind's was measured).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from bench_batches import gemm_ceiling, no_fanout
from bench_laptop_work import curve_gflop, curve_prices, forward_gflop, fresh_cache, robust_gflop
import semlib
from semlib import layout, robust
from semlib.params import load_params
from semlib.robust import RobustConfig
from semlib.runner import Executor
from semlib.study import Study, specs

ONEDNN_DEFAULT = 1024  # oneDNN's own primitive cache, which the engine before issue 17 ran with
# what runs merged into one record must share: one machine, torch, preset and engine pair
MACHINE = ("cpu_capability", "torch", "cpus", "preset", "onednn_primitive_cache")
ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "results" / "laptop_work_avx512.json"  # the laptop tables' work (bench_laptop_work)
CURVES = specs("ABFG", ["bim"], ["untargeted"]) + specs("AG", ["pgd"], ["targeted"])
CURVE_COLUMNS = ["scenario", "attack", "goal", "example", "distortion", "clean_correct", "judge_draws", "gradients"]
ROBUST_COLUMNS = ["label", "example", "clean_correct", "robust", "broken_by", "gradients", "judge_draws", "unconfirmed"]
# each part's share of the laptop tables' work (bench_laptop_work's keys)
SHARES = {"curves": ("02_baselines", "03_whitebox_transfer", "04_query_blackbox", "05_ensemble_strategy",
                     "06_certify_sem", "06b_adaptive", "08_explore"),
          "robust table": ("06b robust",), "strongest": ("06b convergence", "06b strongest")}


@contextlib.contextmanager
def full_guard():
    """Every strided 1x1 convolution kept NCHW by ``layout.channels_last``, as before evaluation
    models were loaded frozen (bench_eval_guard)."""
    guarded, layout.guarded = layout.guarded, layout.exposed
    try:
        yield
    finally:
        layout.guarded = guarded


@contextlib.contextmanager
def old_engine():
    """What ``before`` computed differently in-process: no fanout, and the full guard (its models
    were not frozen)."""
    with full_guard(), no_fanout():
        yield


def engines(curve_images: int) -> dict[str, dict]:
    """Each engine's executor, fanout, ``together`` and blocks (None: the curves' shard)."""
    return {"before": {"executor": Executor(kind="serial"), "context": old_engine, "together": False,
                       "curve_block": None, "robust_block": 25},
            "today": {"executor": Executor(kind="local"), "context": contextlib.nullcontext, "together": True,
                      "curve_block": curve_images // 2, "robust_block": 25}}


def curves(engine: dict, images: int, preset: str) -> tuple[pd.DataFrame, float, float]:
    params = load_params("03_whitebox_transfer", preset)
    shard = params["STUDY"]["shard_size"]
    block = engine["curve_block"] or shard
    study = Study.from_params(params, n_images=images, block=block, together=engine["together"])
    start = time.perf_counter()
    rows = study.curves(CURVES, progress=False, executor=engine["executor"])
    wall = time.perf_counter() - start
    keys = rows[["scenario", "variant"]].drop_duplicates().reset_index(drop=True)
    gflop = float(curve_gflop(rows, curve_prices(study, keys)).sum())  # after the timing: pricing runs the networks
    return rows[CURVE_COLUMNS].fillna({"distortion": -1}), wall, gflop


def robust_part(engine: dict, images: int, defenses: list[str], cfg: dict, preset: str) -> tuple[pd.DataFrame, float, float]:
    params = load_params("06b_adaptive", preset)
    study = Study.from_params(params, n_images=images, shard_size=25, block=engine["robust_block"])
    models = robust.defense_models(study, defenses)
    rcfg = RobustConfig(judge=study.cfg.judge(), channels_last=study.cfg.channels_last, **cfg)
    start = time.perf_counter()
    rows = robust.study_rows(study, models, rcfg, progress=False, executor=engine["executor"])
    wall = time.perf_counter() - start
    gflop = float(robust_gflop(rows, {n: forward_gflop(m) for n, m in models.items()}).sum())
    return rows[ROBUST_COLUMNS].fillna({"broken_by": ""}), wall, gflop


def child(name: str, a: argparse.Namespace, rows_dir: Path) -> dict:
    """Every part by engine ``name`` in this process (started with the engine's oneDNN cache), from an
    empty cache of results; the rows go to ``rows_dir``, the times and work are returned."""
    torch.set_num_threads(2)  # the serial engine's threads; pool workers set their own (one)
    eps = 4 / 255
    parts = {"curves": lambda e: curves(e, a.curve_images, a.preset),
             "robust table": lambda e: robust_part(e, a.robust_images, ["SEM", "F", "G"], dict(
                 eps=eps, norm="linf", steps=20, eot=4, targets=3), a.preset),
             "strongest": lambda e: robust_part(e, a.strong_images, ["SEM", "F"], dict(
                 eps=eps, norm="linf", steps=a.strong_steps, eot=32, attacks=("apgd-ce",)), a.preset)}
    engine, out = engines(a.curve_images)[name], {}
    with fresh_cache(), engine["context"]():
        for part, run in ((p, parts[p]) for p in a.parts.split(",")):  # names checked by main
            rows, wall, gflop = run(engine)
            rows.to_csv(rows_dir / f"{name} {part}.csv", index=False)
            out[part] = {"wall_s": round(wall, 1), "gflop": round(gflop, 1)}
            print(part, name, out[part], file=sys.stderr, flush=True)
    return {"onednn_primitive_cache": int(os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"]), "parts": out}


def fresh_process(script: str, argv: list[str], capacity: int) -> dict:
    """``script argv`` in a fresh process whose oneDNN primitive cache holds ``capacity`` (oneDNN reads it
    once, at its first primitive); returns the JSON of its last line of output (progress: stderr)."""
    env = {**os.environ, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": str(capacity)}
    out = subprocess.run([sys.executable, script, *argv], env=env, stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_engine(name: str, argv: list[str], rows_dir: Path) -> dict:
    """Engine ``name`` in a fresh process with its oneDNN cache."""
    capacity = ONEDNN_DEFAULT if name == "before" else semlib.PRIMITIVE_CACHE
    return fresh_process(__file__, [*argv, "--child", name, "--rows", str(rows_dir)], capacity)


def summary(out: dict[str, dict]) -> dict:
    """The parts' walls and ratios, and the laptop-weighted ratio when every part is there: the
    harmonic mean of the parts' ratios weighted by the laptop tables' work shares."""
    work = json.loads(WORK.read_text())["tflop"]  # FLOPs: the same on every CPU kind
    shares = {p: sum(work[k] for k in keys) for p, keys in SHARES.items()}
    total = sum(shares.values())
    weighted = 1 / sum(shares[p] / total / out[p]["ratio"] for p in out) if len(out) == len(shares) else None
    walls = {e: round(sum(out[p][e]["wall_s"] for p in out), 1) for e in ("before", "today")}
    return {"parts": out, "wall_s": walls, "ratio_this_study": round(walls["before"] / walls["today"], 2),
            "laptop_work_shares": {p: round(s / total, 3) for p, s in shares.items()},
            "ratio_laptop_weighted": weighted and round(weighted, 2)}


def merge(paths: list[Path]) -> dict:
    """One record from runs of separate ``--parts`` on one machine (each part once): their parts, each
    with its own run's GEMM ceiling and settings, and the laptop-weighted ratio of them all."""
    records = [json.loads(p.read_text()) for p in paths]
    for key in MACHINE:
        if len({json.dumps(r.get(key)) for r in records}) > 1:
            raise SystemExit(f"--merge: the runs differ in {key} ({[r.get(key) for r in records]}): merge runs of one machine and engine pair only")
    out: dict[str, dict] = {}
    for path, r in zip(paths, records):
        for part, runs in r["parts"].items():
            if part in out:
                raise SystemExit(f"--merge: part {part!r} is in two runs (the second: {path}): give each part once")
            out[part] = {**runs, "from": path.name, "gemm_ceiling_gflop_per_s": r["gemm_ceiling_gflop_per_s"],
                         "images": r["images"][part], **({"strong_steps": r["strong_steps"]} if part == "strongest" else {})}
    first = records[0]
    return {k: first[k] for k in MACHINE} | summary(out)


def emit(record: dict, path: Path | None) -> None:
    """Print ``record`` and write it to ``path`` when one is given."""
    print(json.dumps(record, indent=1))
    if path:
        path.write_text(json.dumps(record, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="laptop")
    ap.add_argument("--curve-images", type=int, default=40)
    ap.add_argument("--robust-images", type=int, default=50)
    ap.add_argument("--strong-images", type=int, default=50)
    ap.add_argument("--strong-steps", type=int, default=40)
    ap.add_argument("--ceiling", type=float, help="2-thread GFLOP/s measured idle instead of timing it now")
    ap.add_argument("--parts", default=",".join(SHARES), help="comma-separated, of " + ",".join(SHARES))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--merge", type=Path, nargs="+", metavar="JSON",
                    help="combine the records of runs of separate --parts (one machine) into one, with the weighted ratio; runs nothing")
    ap.add_argument("--child", choices=["before", "today"], help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.parts = ",".join(p.strip() for p in a.parts.split(","))
    if unknown := set(a.parts.split(",")) - set(SHARES):
        ap.error(f"unknown --parts {sorted(unknown)}: choose from {', '.join(SHARES)}")
    if a.merge:
        emit(merge(a.merge), a.json)
        return
    if a.child:
        print(json.dumps(child(a.child, a, a.rows)))
        return
    torch.set_num_threads(2)
    ceiling = a.ceiling or gemm_ceiling()
    print(f"GEMM ceiling {ceiling:.1f} GFLOP/s ({layout.cpu_capability()}, 2 threads)", flush=True)
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items()
            if k in ("preset", "curve_images", "robust_images", "strong_images", "strong_steps", "parts")]
    out: dict[str, dict] = {}
    caches: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        rows: dict[tuple[str, str], pd.DataFrame] = {}
        for name in ("before", "today"):
            result = run_engine(name, argv, Path(tmp))
            caches[name] = result["onednn_primitive_cache"]
            for part, r in result["parts"].items():
                out.setdefault(part, {})[name] = {**r, "gflop_per_s": round(r["gflop"] / r["wall_s"], 2),
                                                  "of_ceiling": round(r["gflop"] / r["wall_s"] / ceiling, 3)}
                # the text as written: an empty broken_by stays "" (read_csv's NaN would never equal itself)
                rows[name, part] = pd.read_csv(Path(tmp) / f"{name} {part}.csv", dtype=str, keep_default_na=False)
    for part, runs in out.items():
        first, second = rows["before", part], rows["today", part]
        key = [c for c in ("scenario", "attack", "goal", "label", "example") if c in first.columns]
        first, second = (r.sort_values(key).reset_index(drop=True) for r in (first, second))
        runs["ratio"] = round(runs["before"]["wall_s"] / runs["today"]["wall_s"], 2)
        runs["rows_identical"] = round(float((first == second).all(axis=1).mean()), 3)
        runs["rows_that_differ"] = int((first != second).any(axis=1).sum())
    record = {"cpu_capability": layout.cpu_capability(), "torch": torch.__version__, "cpus": os.cpu_count(),
              "gemm_ceiling_gflop_per_s": round(ceiling, 1), "preset": a.preset, "onednn_primitive_cache": caches,
              "images": {p: n for p, n in [("curves", a.curve_images), ("robust table", a.robust_images),
                                           ("strongest", a.strong_images)] if p in out},
              "strong_steps": a.strong_steps, **summary(out)}
    emit(record, a.json)


if __name__ == "__main__":
    main()
