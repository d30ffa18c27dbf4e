"""Cost of every sub-model of a zoo spec on this CPU: parameters, forward MFLOPs per image, and
training / inference images per second at batch 256 (channels_last, fp32; bf16 autocast only
where the CPU has native bf16), so a laptop zoo can be sized to a training budget.

    .venv/bin/python benchmarks/bench_zoo_throughput.py [--spec params/zoo/laptop.yaml] [--json out.json]

It then estimates the whole zoo's training and evaluation time from these rates: every
sub-model's recipe epochs (unsmoothed, fine-tuned, the single-architecture sigmas) times
50,000 images over its training rate, plus clean accuracy and ACA passes over its inference
rate (baselines not included).

Run with nothing else busy (a second busy process slows 2-thread torch several-fold).
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from semlib import layout
from semlib.layout import autocast, bf16_available
from semlib.zoospec import ZooSpec, load_spec


def _time(fn, reps: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def measure(model: torch.nn.Module, batch: int = 256, reps: int = 3) -> dict:
    x = torch.rand(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            model.eval()(x[:1])
    mflops = counter.get_total_flops() / 1e6
    bf16 = bf16_available()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xc = x.contiguous(memory_format=torch.channels_last)
    with layout.channels_last(model, True):
        def step():
            model.train()
            with autocast(bf16, x.device):
                loss = F.cross_entropy(model(xc), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        @torch.no_grad()
        def infer():
            model.eval()
            model(xc)

        t_train, t_infer = _time(step, reps), _time(infer, reps)
    return {"params": sum(p.numel() for p in model.parameters()), "mflops_forward": round(mflops, 2),
            "train_img_s": round(batch / t_train, 1), "infer_img_s": round(batch / t_infer, 1),
            "train_gflop_s": round(3 * mflops * batch / t_train / 1e3, 1), "bf16": bf16}


def estimate(spec: ZooSpec, rows: dict, n_train: int = 50_000) -> dict:
    """Seconds to train and evaluate every sub-model of ``spec`` at the measured rates."""
    ev = spec.eval_config()
    per = {}
    for sub in spec.submodels():
        if sub.arch not in rows:
            continue
        cfg, _ = spec.train_config(sub)
        r = rows[sub.arch]
        passes = ev.n_test + (ev.aca_images * (ev.n0 + ev.n) if sub.sigma > 0 else 0)
        per[sub.name] = {"train": cfg.epochs * (cfg.n_train or n_train) / r["train_img_s"],
                         "eval": passes / r["infer_img_s"]}
    train_s = sum(v["train"] for v in per.values())
    eval_s = sum(v["eval"] for v in per.values())
    return {"train_seconds": round(train_s), "eval_seconds": round(eval_s), "total_seconds": round(train_s + eval_s),
            "per_submodel": {k: {a: round(b, 1) for a, b in v.items()} for k, v in per.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default="laptop", help="preset name or path of a zoo spec YAML")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    spec: ZooSpec = load_spec(args.spec)
    rows = {}
    for m in spec.models:
        if args.only and m["arch"] not in args.only:
            continue
        sub = spec.submodel(m["arch"], 0.0)
        torch.manual_seed(0)
        rows[sub.arch] = {**{k: m[k] for k in ("width", "depth", "stem_stride") if k in m}, **measure(sub.build())}
        epoch_s = 50_000 / rows[sub.arch]["train_img_s"]
        print(f"{sub.arch:12s} {rows[sub.arch]['params']/1e6:6.2f}M {rows[sub.arch]['mflops_forward']:8.1f} MFLOP "
              f"train {rows[sub.arch]['train_img_s']:7.1f} img/s ({epoch_s:5.0f} s/epoch, "
              f"{rows[sub.arch]['train_gflop_s']:5.1f} GFLOP/s)  infer {rows[sub.arch]['infer_img_s']:7.1f} img/s",
              flush=True)
    est = estimate(spec, rows)
    print(f"estimated: training {est['train_seconds']:.0f} s, evaluation {est['eval_seconds']:.0f} s, "
          f"total {est['total_seconds'] / 3600:.2f} h ({len(est['per_submodel'])} sub-models)")
    out = {"estimate": est, "torch": torch.__version__, "cpu_capability": layout.cpu_capability(), "threads": 2, "spec": args.spec,
           "batch": 256, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
