"""Per-pass costs of every Table-1 architecture at the laptop and the paper widths on each device
here (the CPU, and a CUDA GPU when torch sees one), and the paper preset's cost estimated from
them and the work the laptop run counted (issue 7). It is also the prepared device check: a
session lent a GPU runs it in one call, and the estimate then uses measured GPU costs.

    .venv/bin/python benchmarks/bench_device.py [--json benchmarks/results/device_cpu.json] [--budget 2]

Per (device, preset, architecture), untrained weights (speed does not depend on them), 32x32
inputs: fp32 inference and fp32 input-gradient images/s (what curves spend: attack steps and
Monte-Carlo votes), and training images/s with the zoo's recipe (bf16 autocast where the device
has it, channels_last). Each figure: one warm-up call, then calls until ``--budget`` seconds.

The estimate (printed and stored):
* curves: the laptop run's curve seconds (``results/reproduce_laptop.json``) times the ratio of
  the paper preset's to the laptop preset's forward-pass equivalents, computed per image from the
  committed laptop tables (``outputs/*/laptop/tab_distortions.csv``: attack runs, gradients,
  queries, votes) and the two presets' STUDY settings, times the measured cost ratio of a
  paper-width to a laptop-width pass (mean over the architectures) on each device;
* training: every paper sub-model's epochs x 50,000 images at the measured training speed;
* ACA: (n0 + n) noisy passes x ``aca_images`` per smoothed model at the measured inference speed.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
import yaml

from semlib import layout, zoo
from semlib.study import StudyConfig
from semlib.layout import autocast, bf16_available

ROOT = Path(__file__).resolve().parent.parent
CURVE_ATTACKS = ("bim", "mim", "pgd", "nes", "spsa", "apgd")


def _rate(fn, batch: int, budget: float) -> float:
    """Images per second of ``fn`` (one call = ``batch`` images), after one warm-up call."""
    fn()
    calls, start = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - start < budget:
        fn()
        calls += 1
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return calls * batch / (time.perf_counter() - start)


def measure(model: torch.nn.Module, device: torch.device, batch: int, budget: float) -> dict[str, float]:
    model = model.to(device)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    @torch.no_grad()
    def infer():
        model(x)
        sync()

    def grad():
        xg = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(model(xg), y), xg)
        sync()

    model.eval()
    out = {"infer": _rate(infer, batch, budget), "grad": _rate(grad, batch, budget)}
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    bf16 = device.type != "cpu" or bf16_available()
    xc = x.contiguous(memory_format=torch.channels_last)

    def step():
        with autocast(bf16, device):
            loss = F.cross_entropy(model(xc), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync()

    with layout.channels_last(model):  # oneDNN's AVX2 bug: exposed layers stay NCHW (semlib.layout)
        out["train"] = _rate(step, batch, budget)
    return out


def throughput(devices: list[torch.device], budget: float) -> pd.DataFrame:
    rows = []
    for preset in ("laptop", "paper"):
        spec = zoo.load_spec(preset)
        for m in spec.models:
            for dev in devices:
                batch = 32 if dev.type == "cpu" else 512
                torch.manual_seed(0)
                r = measure(spec.submodel(m["arch"], 0.0).build(), dev, batch, budget)
                rows.append({"device": _name(dev), "preset": preset, "arch": m["arch"], "batch": batch,
                             **{f"{k}_img_s": round(v, 1) for k, v in r.items()}})
                print(f"{_name(dev):>24} {preset:>6} {m['arch']:>12}  " +
                      "  ".join(f"{k} {v:8.1f}" for k, v in r.items()), flush=True)
    return pd.DataFrame(rows)


def _name(dev: torch.device) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"


def _study(preset: str) -> StudyConfig:
    raw = yaml.safe_load((ROOT / "params" / "03_whitebox_transfer" / f"{preset}.yaml").read_text())
    return StudyConfig.from_dict(raw["STUDY"])


def pass_ratio(grad_weight: float) -> dict[str, float]:
    """Paper / laptop forward-pass equivalents of the laptop run's curves, per image: attack
    runs grow with the search rounds, each run's gradients or queries with steps x EOT or the
    query budget, and the votes with N; a gradient counts ``grad_weight`` forward passes."""
    lap, pap = _study("laptop"), _study("paper")
    tables = [pd.read_csv(p) for p in sorted(ROOT.glob("outputs/*/laptop/tab_distortions.csv"))]
    rows = pd.concat(tables).drop_duplicates(["scenario", "attack", "goal", "variant", "example"])
    rows = rows[rows.attack.isin(CURVE_ATTACKS) & (rows.attack_runs > 0)]
    found = rows.distortion.notna()
    # laptop: exponential rounds then binary_steps; paper: the same exponential rounds, then its
    # binary_steps; an image never broken in the laptop's rounds gets the paper's whole search
    exp_rounds = (rows.attack_runs - lap.binary_steps).clip(lower=1)
    runs_paper = exp_rounds.where(found, pap.search_steps) + found * pap.binary_steps
    runs_ratio = runs_paper / rows.attack_runs
    per_run = rows.gradients / rows.attack_runs
    grad_ratio = pd.Series(1.0, index=rows.index)
    for attack, (steps_l, eot_l, steps_p, eot_p) in {
            "bim": (lap.steps, lap.eot, pap.steps, pap.eot), "mim": (lap.steps, lap.eot, pap.steps, pap.eot),
            "pgd": (lap.steps, lap.eot, pap.steps, pap.eot),
            "apgd": (lap.apgd_steps, lap.apgd_eot, pap.apgd_steps, pap.apgd_eot)}.items():
        sel = rows.attack == attack
        rand = per_run[sel] > steps_l  # EOT > 1 only on a random model (a deterministic one: 1 pass per step)
        grad_ratio[sel] = (steps_p / steps_l) * rand.map({True: eot_p / eot_l, False: 1.0})
    query_ratio = pap.query_budget / lap.query_budget
    # a deterministic judge casts 1 vote per verdict (2 for a targeted curve's clean check)
    vote_ratio = (rows.judge_draws > rows.attack_runs + 2) * (pap.judge_n / lap.judge_n - 1) + 1
    laptop_cost = grad_weight * rows.gradients + rows.queries + rows.judge_draws
    paper_cost = runs_ratio * (grad_weight * rows.gradients * grad_ratio + rows.queries * query_ratio
                               + rows.judge_draws * vote_ratio)
    return {"image_curves": len(rows), "grad_weight": round(grad_weight, 2),
            "runs_ratio_mean": round(float(runs_ratio.mean()), 2),
            "per_image_ratio": round(float(paper_cost.sum() / laptop_cost.sum()), 1),
            "images_ratio": round(pap.n_images / lap.n_images, 2)}


def estimate(tp: pd.DataFrame) -> dict:
    cpu = tp[tp.device.str.startswith("cpu")]
    lap_cpu = cpu[cpu.preset == "laptop"].set_index("arch")
    grad_weight = float((lap_cpu.infer_img_s / lap_cpu.grad_img_s).mean())
    ratio = pass_ratio(grad_weight)
    run = json.loads((ROOT / "benchmarks" / "results" / "reproduce_laptop.json").read_text())
    laptop_curve_s = sum(v for k, v in run["seconds_by_attack"].items() if k in CURVE_ATTACKS)
    paper = zoo.load_spec("paper")
    ev = paper.eval_config()
    subs = paper.submodels()
    out = {"laptop_curve_seconds_cpu": laptop_curve_s, "work": ratio, "devices": {}}
    for device, g in tp.groupby("device"):
        pap = g[g.preset == "paper"].set_index("arch")
        # mean seconds per image-gradient over each zoo's architectures: a paper pass here vs a laptop pass on the CPU
        width = float((1 / pap.grad_img_s).mean() / (1 / lap_cpu.grad_img_s).mean())
        curves_h = laptop_curve_s * ratio["per_image_ratio"] * ratio["images_ratio"] * width / 3600
        train_h = sum(paper.train_config(s)[0].epochs * 50_000 / pap.train_img_s[s.arch] for s in subs) / 3600
        aca_h = sum((ev.n0 + ev.n) * ev.aca_images / pap.infer_img_s[s.arch] for s in subs if s.sigma > 0) / 3600
        out["devices"][device] = {"paper_pass_vs_laptop_cpu_pass": round(width, 2), "curves_hours": round(curves_h),
                                  "train_hours": round(train_h), "aca_hours": round(aca_h),
                                  "total_hours": round(curves_h + train_h + aca_h)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json")
    ap.add_argument("--budget", type=float, default=2.0, help="seconds per measurement")
    ap.add_argument("--estimate-only", metavar="JSON", help="recompute the estimate from a stored run's throughput "
                    "(after the laptop outputs changed) and write it back there")
    args = ap.parse_args()
    if args.estimate_only:
        stored = json.loads(Path(args.estimate_only).read_text())
        stored["estimate"] = estimate(pd.DataFrame(stored["throughput"]))
        print(json.dumps(stored["estimate"], indent=1))
        Path(args.estimate_only).write_text(json.dumps(stored, indent=1))
        return
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    start = time.perf_counter()
    tp = throughput(devices, args.budget)
    est = estimate(tp)
    print(json.dumps(est, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "budget_s": args.budget, "wall_s": round(time.perf_counter() - start),
            "throughput": tp.to_dict(orient="records"), "estimate": est}, indent=1))


if __name__ == "__main__":
    main()
