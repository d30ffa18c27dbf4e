"""Does this torch/oneDNN still have the AVX2 channels_last 1x1 backward-weights bug (oneDNN
issue 6035)? semlib.layout works around it; run this after a torch upgrade to see whether the
workaround is still needed, or on a new CPU kind.

    .venv/bin/python benchmarks/onednn_issue6035.py [--isa native AVX2 AVX512_CORE]

Each case runs single-threaded in a subprocess with a timeout: a strided 1x1 convolution on an
NHWC source with C input channels, 50 backward passes, weight gradient compared with a float64
NCHW reference. ``--isa`` caps oneDNN's instruction set (``ONEDNN_MAX_CPU_ISA``), so an
AVX-512 machine can exercise the AVX2 kernels. Prints one line per case: ok / WRONG / CRASH / HANG.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = r"""
import sys, torch
torch.set_num_threads(1)
ic, stride, guarded = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
torch.manual_seed(0)
conv = torch.nn.Conv2d(ic, 8, 1, stride=stride, bias=False)
ref = torch.nn.Conv2d(ic, 8, 1, stride=stride, bias=False).double()
ref.weight.data.copy_(conv.weight.data.double())
x = torch.rand(128, ic, 16, 16)
ref(x.double()).square().sum().backward()
if guarded:
    from semlib import layout
    ctx = layout.channels_last(conv)
else:
    conv.to(memory_format=torch.channels_last)
    import contextlib; ctx = contextlib.nullcontext()
with ctx:
    for _ in range(50):
        conv.weight.grad = None
        conv(x.contiguous(memory_format=torch.channels_last)).square().sum().backward()
err = float((conv.weight.grad.double() - ref.weight.grad).abs().max() / ref.weight.grad.abs().max())
print(f"{torch.backends.cpu.get_cpu_capability()} {err:.2e}")
"""


def run_case(ic: int, stride: int, guarded: bool, isa: str, timeout: float) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if isa != "native":
        env["ONEDNN_MAX_CPU_ISA"] = isa
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, str(ic), str(stride), "1" if guarded else "0"],
                             env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"HANG (> {timeout:g} s)"
    if out.returncode != 0:
        return f"CRASH (rc {out.returncode}: {(out.stderr.strip().splitlines() or ['?'])[-1][:60]})"
    cap, err = out.stdout.split()
    return f"{'ok' if float(err) < 1e-4 else 'WRONG'} (relative error {err}, ATen {cap})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--isa", nargs="+", default=["native", "AVX2"])
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    import torch

    print(f"torch {torch.__version__}, ATen CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for isa in args.isa:
        for ic, stride in ((4, 2), (7, 2), (8, 2), (4, 1)):
            for guarded in (False, True):
                what = "semlib.layout" if guarded else "plain channels_last"
                print(f"ISA {isa:>11}  C_in {ic}  stride {stride}  {what:>19}: "
                      f"{run_case(ic, stride, guarded, isa, args.timeout)}", flush=True)


if __name__ == "__main__":
    main()
