"""Training and inference throughput of one laptop-zoo model under each precision/layout.

Prints images/s and ratios against fp32 + contiguous measured in the same run. Run with
nothing else busy on the machine (a second busy process slows 2-thread torch several-fold):

    .venv/bin/python benchmarks/bench_training.py [--arch resnet18] [--json out.json]

The same script run under another torch build (PYTHONPATH=. other/bin/python ...) gives the
torch-version comparison in the README.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from semlib import layout
from semlib.models import build_model
from semlib.layout import autocast, bf16_available

LAPTOP_CONFIGS = {
    "resnet18": dict(width=0.25, stem_stride=2),
    "vgg11": dict(width=0.25, stem_stride=1),
    "densenet100": dict(width=1.0, depth=0.25, stem_stride=2),
}


def _time(fn, reps: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps


def measure(arch: str, channels_last: bool, bf16: bool, batch: int = 256, reps: int = 5) -> dict:
    torch.manual_seed(0)
    model = build_model(arch, **LAPTOP_CONFIGS[arch])
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.rand(batch, 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    dev = torch.device("cpu")

    def train_step():
        with autocast(bf16, dev):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    @torch.no_grad()
    def infer():
        with autocast(bf16, dev):
            model(x)

    with layout.channels_last(model, channels_last):  # as training runs it (semlib.layout)
        model.train()
        t_train = _time(train_step, reps)
        model.eval()
        t_inf = _time(infer, reps)
    return {"train_img_s": batch / t_train, "infer_img_s": batch / t_inf}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet18", choices=sorted(LAPTOP_CONFIGS))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = {}
    for cl in (False, True):
        for bf in (False, True):
            if bf and not bf16_available():
                continue
            rows[f"{'channels_last' if cl else 'contiguous'}+{'bf16' if bf else 'fp32'}"] = measure(args.arch, cl, bf)
    ref = rows["contiguous+fp32"]
    print(f"torch {torch.__version__}, CPU {layout.cpu_capability()}, {torch.get_num_threads()} threads, "
          f"arch {args.arch} (laptop config)")
    print(f"{'setting':24s} {'train img/s':>12s} {'ratio':>6s} {'infer img/s':>12s} {'ratio':>6s}")
    for k, r in rows.items():
        print(f"{k:24s} {r['train_img_s']:12.0f} {r['train_img_s'] / ref['train_img_s']:6.2f} "
              f"{r['infer_img_s']:12.0f} {r['infer_img_s'] / ref['infer_img_s']:6.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"torch": torch.__version__, "cpu_capability": layout.cpu_capability(), "arch": args.arch,
                       "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
