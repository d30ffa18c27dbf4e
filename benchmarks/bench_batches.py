"""How well a laptop curve sweep feeds the sub-models (issue 17): the machine's GEMM ceiling,
then the sweep run serially under several batch layouts, each reporting its wall time, the
sub-model calls and their mean batch, the FLOPs done (forward passes, plus one more forward's
worth for each input-gradient pass) and the achieved GFLOP/s as a fraction of the ceiling.
Ratios come from one run; run it with nothing else busy:

    .venv/bin/python benchmarks/bench_batches.py [--zoo laptop] [--json benchmarks/results/batches_<kind>.json]

Layouts: ``chunk`` — every pass of an ensemble capped at the single-model chunk (the engine
before ensembles declared their fanout); ``fanout`` — the SEM gets ``chunk * M / E[K]`` rows per
judge pass (and up to 4x per gradient pass), so its sub-models see full batches; ``fanout,
one shard`` — the same with all images in one shard; ``together`` — the curves of a shard run
together, every network call batched across them (``semlib.batching``, the default), with
shards of 8 images or one shard. Draws are per image and request (``semlib.streams``), so the
layouts compute the same curves up to rounding; the share of per-image distortions identical
to the first layout's is reported. A 2-image sweep warms the kernels first.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from semlib import layout
from semlib.ensemble import StochasticEnsemble
from semlib.smoothing import NoisyClassifier
from semlib.study import Study, StudyConfig, specs

SWEEP = dict(n_images=16, steps=5, period=2, eot=2, judge_n=100, search_steps=6, binary_steps=3, shard_size=8,
             block=8)  # a shard at a time, as these layouts were measured (benchmarks/bench_curve_blocks.py: blocks)
CURVES = specs("ABFG", ["bim"], ["untargeted"]) + specs("AG", ["pgd"], ["targeted"])


def gemm_ceiling(n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the best of ``repeats`` fp32 ``torch.mm`` of two n x n matrices."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Calls:
    """Rows and FLOPs of every call of the sub-models' networks (forward hooks), and whether
    each call built a gradient (``grad``)."""

    def __init__(self):
        self.rows: list[int] = []
        self.grad: list[bool] = []
        self.flops = 0.0
        self._per_image: dict[int, float] = {}

    def watch(self, models) -> None:
        for model in models:
            for m in model.modules():
                if isinstance(m, NoisyClassifier) and id(m.base) not in self._per_image:
                    self._per_image[id(m.base)] = _flops_per_image(m.base)
                    m.base.register_forward_hook(self._hook)

    def _hook(self, module, args, out) -> None:
        n, grad = len(args[0]), torch.is_grad_enabled()
        self.rows.append(n)
        self.grad.append(grad)
        self.flops += n * self._per_image[id(module)] * (2 if grad else 1)

    def reset(self) -> None:
        self.rows, self.grad, self.flops = [], [], 0.0


def _flops_per_image(net: torch.nn.Module) -> float:
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    return float(counter.get_total_flops())


@contextlib.contextmanager
def no_fanout():
    """Ensembles without a declared fanout: every pass capped at the single-model chunk."""
    prop = StochasticEnsemble.fanout
    StochasticEnsemble.fanout = property(lambda self: 1)
    try:
        yield
    finally:
        StochasticEnsemble.fanout = prop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", default="laptop")
    ap.add_argument("--json")
    ap.add_argument("--layouts", default="all", help="layout names separated by | (default: all)")
    ap.add_argument("--images", type=int, default=SWEEP["n_images"])
    args = ap.parse_args()
    SWEEP["n_images"] = args.images
    ceiling = gemm_ceiling()
    print(f"GEMM ceiling {ceiling:.1f} GFLOP/s ({layout.cpu_capability()}, {torch.get_num_threads()} threads)", flush=True)
    calls, results, rows = Calls(), {}, {}
    one = {"shard_size": SWEEP["n_images"], "block": SWEEP["n_images"]}
    layouts = [(name, extra, ctx) for name, extra, ctx in (
        ("chunk", {"together": False}, no_fanout), ("fanout", {"together": False}, contextlib.nullcontext),
        ("fanout, one shard", {**one, "together": False}, contextlib.nullcontext),
        ("together", {}, contextlib.nullcontext), ("together, one shard", one, contextlib.nullcontext))
        if name in args.layouts.split("|") or args.layouts == "all"]
    with tempfile.TemporaryDirectory() as tmp:
        warm = Study(args.zoo, StudyConfig.from_dict({**SWEEP, "n_images": 2}), threshold=0.2, cache_dir=Path(tmp) / "warm")
        warm.curves(CURVES, progress=False)  # loads and warms the kernels, so no layout pays for it
        for name, extra, ctx in layouts:
            study = Study(args.zoo, StudyConfig.from_dict({**SWEEP, **extra}), threshold=0.2, cache_dir=Path(tmp) / name)
            calls.watch(m for spec in CURVES for m in study.models_for(spec))
            calls.reset()
            with ctx():
                start = time.perf_counter()
                rows[name] = study.curves(CURVES, progress=False)
                wall = time.perf_counter() - start
            r = torch.tensor(calls.rows, dtype=torch.float64)
            results[name] = {"wall_s": round(wall, 1), "calls": len(calls.rows), "mean_batch": round(float(r.mean()), 1),
                             "median_batch": float(r.median()), "gflop": round(calls.flops / 1e9, 1),
                             "gflop_per_s": round(calls.flops / 1e9 / wall, 2),
                             "fraction_of_ceiling": round(calls.flops / 1e9 / wall / ceiling, 3)}
            print(name, json.dumps(results[name]), flush=True)
    first = next(iter(rows))
    base = rows[first].distortion.fillna(-1)
    speed = {f"speedup_{k}": round(results[first]["wall_s"] / v["wall_s"], 2) for k, v in results.items() if k != first}
    out = {"cpu_capability": layout.cpu_capability(), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "zoo": args.zoo, "curves": len(CURVES), "images": SWEEP["n_images"], "gemm_ceiling_gflop_per_s": round(ceiling, 1),
           "layouts": results, "reference": first, **speed,
           "identical_distortions": {k: round(float((v.distortion.fillna(-1) == base).mean()), 3) for k, v in rows.items()}}
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
