"""Two recipe questions for the laptop zoo, answered by training (run after `make zoo`, with
nothing else busy):

1. Fine-tuning the smoothed models from the unsmoothed one (1 epoch) versus training them from
   scratch (the unsmoothed recipe, 5 epochs): time and ACA, for ResNet-18 at sigma 0.25.
2. The noise space (SUMMARY.md's open question): ACA at sigma 1.5 with noise in pixel space
   (the zoo) versus after the normalization layer ("normalized"), for VGG-11 and ResNet-18.

    SEMLIB_DATA=... .venv/bin/python benchmarks/bench_zoo_recipes.py [--json out.json]
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
from pathlib import Path

import torch

from semlib import artifacts
from semlib.zoo import ZooSpec, default_dir, load_spec, train_zoo


def _copy_parent(src: Path, dst: Path, arch: str) -> None:
    for ext in (".safetensors", ".json"):
        shutil.copy(src / f"{arch}_s0{ext}", dst / f"{arch}_s0{ext}")


def _variant(base: ZooSpec, arch: str, sigma: float, **changes) -> ZooSpec:
    model = next(m for m in base.models if m["arch"] == arch)
    return dataclasses.replace(base, models=[model], sigmas=[0.0, sigma], single_arch=None, **changes)


def run(arch: str, sigma: float, spec: ZooSpec, zoo: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        _copy_parent(zoo, Path(tmp), arch)
        df = train_zoo(spec, tmp, progress=False)
    row = df[df.sigma == sigma].iloc[0]
    return {"arch": arch, "sigma": sigma, "train_seconds": float(row.train_seconds), "aca": float(row.aca),
            "clean_accuracy_no_noise": float(row.clean_accuracy)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    base = load_spec("laptop")
    zoo = default_dir("laptop")
    card = lambda name: artifacts.read_card(zoo / f"{name}.safetensors")  # noqa: E731
    out = {}
    ft = card("resnet18_s0.25")
    scratch = run("resnet18", 0.25, _variant(base, "resnet18", 0.25, finetune=None), zoo)
    out["finetune_vs_scratch"] = {
        "finetune": {"train_seconds": ft["train_seconds"], "aca": ft["aca"]}, "scratch": scratch}
    print(f"ResNet-18 sigma 0.25: fine-tune {ft['train_seconds']:.0f} s, ACA {ft['aca']:.3f} | "
          f"scratch {scratch['train_seconds']:.0f} s, ACA {scratch['aca']:.3f} | "
          f"time ratio {scratch['train_seconds'] / ft['train_seconds']:.1f}x")
    out["noise_space"] = []
    for arch in ("vgg11", "resnet18"):
        pix = card(f"{arch}_s1.5")
        norm = run(arch, 1.5, _variant(base, arch, 1.5, noise_space="normalized"), zoo)
        out["noise_space"].append({"arch": arch, "pixel_aca": pix["aca"], "normalized_aca": norm["aca"]})
        print(f"{arch} sigma 1.5: ACA pixel-space {pix['aca']:.3f}, normalized-space {norm['aca']:.3f} "
              f"(paper Table 1: ~80% for most families)")
    if args.json:
        artifacts.write_json(args.json, out)


if __name__ == "__main__":
    main()
