"""Training is correct on every x86 CPU torch supports (oneDNN issue 6035, semlib.layout).

The smoke ResNet-18 has strided 1x1 shortcuts on 4, 8 and 16 channels: oneDNN's AVX2
backward-weights kernel gets the 4-channel one wrong in channels_last (heap corruption, a hang,
or silently wrong weight gradients), its AVX-512 kernel the 8-channel one (gradients off by
2%; measured on an AVX-512 Xeon with torch 2.11). The check runs single-threaded in a subprocess with a timeout, once on the
CPU's own kernels and once with oneDNN limited to AVX2 (``ONEDNN_MAX_CPU_ISA``, with ATen's
``ATEN_CPU_CAPABILITY``), so an AVX-512 machine exercises the AVX2 kernels too.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from semlib import layout
from semlib.models import build_model

SMOKE_RESNET18 = dict(width=0.0625, depth=0.5, stem_stride=2)  # params/zoo/smoke.yaml
ISAS = {"native": {}, "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}

CHILD = r"""
import copy, json, sys
import torch
import torch.nn.functional as F
from semlib import layout, training
from semlib.models import build_model
torch.set_num_threads(1)
torch.manual_seed(0)
model = build_model("resnet18", **json.loads(sys.argv[1]))
cl = sys.argv[2] == "channels_last"
# training through the library's loop: crashes or hangs here when unguarded (also with
# channels_last off: the random crop hands the model NHWC strides)
gen = torch.Generator().manual_seed(0)
x8 = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8, generator=gen)
y8 = torch.randint(0, 10, (256,), generator=gen)
training.train(model, x8, y8, training.TrainConfig(epochs=3, batch_size=64, bf16=False, channels_last=cl),
               progress=False)
# weight gradients, channels_last float32 (repeated) against contiguous float64
x = torch.rand(64, 3, 32, 32, generator=gen)
y = torch.randint(0, 10, (64,), generator=gen)
ref = copy.deepcopy(model).double().train()
F.cross_entropy(ref(x.double()), y).backward()
model.train()
with layout.channels_last(model, cl):
    for _ in range(20):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last) if cl else x), y).backward()
errors = {n: float((p.grad.double() - q.grad).abs().max() / q.grad.abs().max().clamp_min(1e-30))
          for (n, p), (_, q) in zip(model.named_parameters(), ref.named_parameters())}
print(json.dumps({"capability": layout.cpu_capability(), "errors": errors}))
"""


FROZEN_CHILD = r"""
import copy, json, sys
import torch
import torch.nn.functional as F
from semlib import layout
from semlib.models import build_model
torch.set_num_threads(int(sys.argv[2]))
torch.manual_seed(0)
model = build_model("resnet18", **json.loads(sys.argv[1])).eval()
gen = torch.Generator().manual_seed(0)
with torch.no_grad():  # BatchNorm statistics that are not the identity
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5, generator=gen); m.running_var.uniform_(0.5, 2, generator=gen)
ref = copy.deepcopy(model).double()
model.requires_grad_(False)  # as semlib.checkpoints loads every model for evaluation
errors = {"logits": 0.0, "input_gradient": 0.0}
with layout.channels_last(model):
    nhwc = [m for m in model.modules() if layout.exposed(m) and not m._forward_pre_hooks]
    for batch in (3, 64, 3, 64):
        x = torch.rand(batch, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (batch,), generator=gen)
        xr = x.double().requires_grad_(True)
        out_r = ref(xr)
        (g_r,) = torch.autograd.grad(F.cross_entropy(out_r, y), xr)
        for _ in range(10):
            xi = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
            out = model(xi)
            (g,) = torch.autograd.grad(F.cross_entropy(out, y), xi)
            for name, a, b in (("logits", out, out_r), ("input_gradient", g, g_r)):
                err = float((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-30))
                errors[name] = max(errors[name], err)
print(json.dumps({"capability": layout.cpu_capability(), "errors": errors, "nhwc_exposed": len(nhwc)}))
"""


def test_smoke_resnet18_has_the_exposed_layer():
    """The regression test below is only meaningful if the model has the failing layer shape."""
    model = build_model("resnet18", **SMOKE_RESNET18)
    assert [m.in_channels for m in model.modules() if layout.exposed(m)] == [4, 8, 16]


def test_exposed_matches_the_bug_description():
    conv = torch.nn.Conv2d
    assert layout.exposed(conv(4, 8, 1, stride=2))
    assert layout.exposed(conv(7, 16, 1, stride=(2, 1)))
    assert layout.exposed(conv(8, 16, 1, stride=2))  # AVX-512 kernels fail here (oneDNN 3.10)
    assert layout.exposed(conv(64, 128, 1, stride=2))
    assert not layout.exposed(conv(4, 8, 1, stride=1))  # stride 1 is fine
    assert not layout.exposed(conv(3, 16, 3, stride=2))  # 3x3 uses another kernel
    assert not layout.exposed(torch.nn.Linear(4, 8))


def test_only_a_convolution_with_a_weight_gradient_is_guarded():
    conv = torch.nn.Conv2d(4, 8, 1, stride=2)
    assert layout.guarded(conv)
    assert not layout.guarded(conv.requires_grad_(False))  # frozen: oneDNN's broken kernel never runs
    assert not layout.guarded(torch.nn.Conv2d(4, 8, 3, stride=2))  # not exposed
    model = build_model("resnet18", **SMOKE_RESNET18).requires_grad_(False)
    shortcut = next(m for m in model.modules() if layout.exposed(m))
    with layout.channels_last(model):
        assert not shortcut._forward_pre_hooks and shortcut.weight.stride()[1] == 1  # NHWC
    assert shortcut.weight.is_contiguous() and layout.nchw(shortcut.weight) is shortcut.weight


def test_channels_last_block_restores_the_model():
    model = build_model("resnet18", **SMOKE_RESNET18)
    shortcut = next(m for m in model.modules() if layout.exposed(m))
    body = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and not layout.exposed(m)
                and m.kernel_size == (3, 3) and m.in_channels >= 8)
    with layout.channels_last(model):
        assert body.weight.is_contiguous(memory_format=torch.channels_last)
        assert body.weight.stride()[1] == 1  # really NHWC
        assert shortcut.weight.stride() == (4, 1, 1, 1) and shortcut._forward_pre_hooks
    assert body.weight.is_contiguous() and not shortcut._forward_pre_hooks
    assert all(layout.nchw(p) is p for p in model.parameters())  # no channels_last strides left
    with layout.channels_last(model, enabled=False):  # contiguous, but the exposed layer still guarded
        assert body.weight.is_contiguous() and shortcut._forward_pre_hooks
    assert not shortcut._forward_pre_hooks


@pytest.mark.slow
@pytest.mark.parametrize("layout_", ["channels_last", "contiguous"])
@pytest.mark.parametrize("isa", sorted(ISAS))
def test_training_is_correct_single_threaded(isa, layout_):
    env = {**os.environ, **ISAS[isa], "OMP_NUM_THREADS": "1"}
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(SMOKE_RESNET18), layout_], env=env,
                             capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail(f"single-thread channels_last training hung for 240 s with oneDNN ISA {isa!r}")
    assert out.returncode == 0, f"training crashed (rc {out.returncode}) with ISA {isa!r}: {out.stderr[-2000:]}"
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if isa == "avx2":
        assert result["capability"] in ("AVX2", "DEFAULT"), result["capability"]
    worst = max(result["errors"].items(), key=lambda kv: kv[1])
    assert worst[1] < 1e-4, f"weight gradient of {worst[0]} off by {worst[1]:.2e} (relative) with ISA {isa!r}"
    assert len(result["errors"]) == len(list(build_model("resnet18", **SMOKE_RESNET18).parameters()))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("isa", sorted(ISAS))
def test_frozen_evaluation_is_correct_channels_last(isa, threads):
    """Evaluation runs every layer channels_last, the strided 1x1 shortcuts on 4, 8 and 16
    channels included (frozen weights: no backward-weights kernel): logits and input gradients
    agree with a float64 contiguous reference, at batch 3 and 64, repeated, without a crash."""
    env = {**os.environ, **ISAS[isa], "OMP_NUM_THREADS": str(threads)}
    try:
        out = subprocess.run([sys.executable, "-c", FROZEN_CHILD, json.dumps(SMOKE_RESNET18), str(threads)], env=env,
                             capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"frozen channels_last evaluation hung for 120 s with oneDNN ISA {isa!r}")
    assert out.returncode == 0, f"evaluation crashed (rc {out.returncode}) with ISA {isa!r}: {out.stderr[-2000:]}"
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["nhwc_exposed"] == 3  # every shortcut really ran NHWC
    if isa == "avx2":
        assert result["capability"] in ("AVX2", "DEFAULT"), result["capability"]
    for name, err in result["errors"].items():
        assert err < 1e-4, f"{name} off by {err:.2e} (relative) with ISA {isa!r}, {threads} threads"
