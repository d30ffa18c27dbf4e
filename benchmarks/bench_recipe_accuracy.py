"""Accuracy per CPU-second of laptop-zoo training recipes (issue 14), measured by training.

For one architecture at its laptop size (default ResNet-18 from ``params/zoo/laptop.yaml``):
epochs (5, 10, 15), label smoothing (0.1 vs 0), weight averaging (EMA of the weights and batch-norm
statistics, kept beside the run at two decays), test-time flips (mean logits of the image and
its mirror), the fp16 cast the shipped weights get, and for the smoothed models fine-tuning from
the unsmoothed one (0.5 and 1 epoch) versus training from scratch, in the chosen noise space.
Clean accuracy on the 2,000-image evaluation subset; ACA (Cohen's certify at radius 0, n0 32,
n 256, alpha 0.001) on its first 200 images. Rows are appended to the JSON as they finish, so an
interrupted run resumes.

    SEMLIB_DATA=... .venv/bin/python benchmarks/bench_recipe_accuracy.py --json out.json [--arch resnet18]

Run with nothing else busy on the machine.
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from semlib import artifacts, layout
from semlib.data import eval_subset, load_split
from semlib.smoothing import NoisyClassifier, certify
from semlib.training import TrainConfig, accuracy, train
from semlib.zoospec import load_spec

EMA_DECAYS = (0.99, 0.998)


@torch.no_grad()
def flip_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    model.eval()
    hits = 0
    for s in range(0, len(y), batch):
        xb = x[s:s + batch]
        hits += int(((model(xb) + model(xb.flip(3))).argmax(1) == y[s:s + batch]).sum())
    return hits / len(y)


def fp16_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy holding the weights a checkpoint ships (artifacts.as_stored)."""
    return artifacts.as_stored(copy.deepcopy(model))


def evaluate(model, sigma: float, space: str, x, y) -> dict:
    out = {"clean": accuracy(model, x, y), "clean_flip": flip_accuracy(model, x, y),
           "clean_fp16": accuracy(fp16_copy(model), x, y)}
    if sigma > 0:
        cert = certify(NoisyClassifier(model, sigma, space), x[:200], sigma, 32, 256, 0.001,
                       generator=torch.Generator().manual_seed(0))
        out["aca"] = float((cert.prediction == y[:200]).float().mean())
    return out


def run(name: str, arch_cfg: dict, cfg: TrainConfig, data, x, y, init: Path | None, save: Path | None) -> dict:
    torch.manual_seed(cfg.seed)
    spec = load_spec("laptop")
    model = spec.submodel(arch_cfg["arch"], 0.0).build()
    if init is not None:
        model.load_state_dict(torch.load(init, weights_only=True))
    emas = {d: AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(d), use_buffers=True) for d in EMA_DECAYS}
    res = train(model, data.x, data.y, cfg, progress=False, on_step=lambda m: [e.update_parameters(m) for e in emas.values()])
    if save is not None:
        torch.save(model.state_dict(), save)
    row = {"name": name, "arch": arch_cfg["arch"], "train": cfg.to_dict(), "init": str(init) if init else None,
           "train_seconds": round(res.seconds, 1), **evaluate(model, cfg.sigma, cfg.noise_space, x, y)}
    for d, e in emas.items():
        row[f"ema{d}"] = evaluate(e.module, cfg.sigma, cfg.noise_space, x, y)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--space", default="normalized")
    ap.add_argument("--json", required=True)
    ap.add_argument("--work", default="/tmp/recipe_ckpt")
    ap.add_argument("--only", nargs="*", default=None, help="run only these rows (e.g. s0_e10 s0_e15)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    spec = load_spec("laptop")
    arch_cfg = next(m for m in spec.models if m["arch"] == args.arch)
    base = {**spec.train, **arch_cfg.get("train", {})}
    data = load_split("train")
    x, y, _ = eval_subset(2000)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    out_path = Path(args.json)
    done = json.loads(out_path.read_text()) if out_path.exists() else {
        "torch": torch.__version__, "cpu_capability": layout.cpu_capability(), "threads": 2, "rows": []}
    s0 = work / f"{args.arch}_e5.pt"
    ft = {**base, **(spec.finetune or {})}
    plan = [
        ("s0_e5", TrainConfig(**base), None, s0),
        ("s0_e10", TrainConfig(**{**base, "epochs": 10}), None, None),
        ("s0_e15", TrainConfig(**{**base, "epochs": 15}), None, None),
        ("s0_e5_ls0", TrainConfig(**{**base, "label_smoothing": 0.0}), None, None),
    ]
    for sigma in (0.25, 1.5):
        for ep in (0.5, 1.0):
            plan.append((f"s{sigma}_ft{ep}", TrainConfig(**{**ft, "epochs": ep, "sigma": sigma, "noise_space": args.space}),
                         s0, None))
    plan.append(("s0.25_scratch_e5", TrainConfig(**{**base, "sigma": 0.25, "noise_space": args.space}), None, None))
    for name, cfg, init, save in plan:
        if (args.only is not None and name not in args.only) or any(
                r["name"] == name and r["arch"] == args.arch for r in done["rows"]):
            continue
        start = time.perf_counter()
        row = run(name, arch_cfg, cfg, data, x, y, init, save)
        row["wall_seconds"] = round(time.perf_counter() - start, 1)
        done["rows"].append(row)
        out_path.write_text(json.dumps(done, indent=1))
        print(json.dumps({k: v for k, v in row.items() if k != "train"}), flush=True)


if __name__ == "__main__":
    main()
