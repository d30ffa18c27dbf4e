"""Devices (issue 7): ``auto`` takes a GPU when torch sees one, else the CPU; bad names fail in
one line; a GPU generator drives the SEM's draws deterministically without the global RNG;
every cached shard and zoo card records the device that computed it. The CUDA tests run only
where a GPU is visible (never in CI here)."""
import json

import pytest
import torch
from torch import nn

from semlib import device as dv
from semlib.layout import cpu_capability
from semlib.ensemble import StochasticEnsemble
from semlib.streams import derived_cpu_generator, draw_generator
from semlib.smoothing import NoisyClassifier
from semlib.study import CurveSpec, Study, StudyConfig

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
TINY = dict(n_images=2, steps=1, eot=1, judge_n=2, search_steps=2, binary_steps=1, eps0=0.02, shard_size=2)


def test_auto_takes_a_gpu_when_torch_sees_one(monkeypatch):
    monkeypatch.delenv(dv.ENV, raising=False)
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert dv.resolve().type == want and dv.resolve("auto").type == want
    assert dv.resolve("cpu") == torch.device("cpu") and dv.describe(torch.device("cpu")) == "cpu"


def test_environment_variable_sets_auto_and_explicit_names_win(monkeypatch):
    monkeypatch.setenv(dv.ENV, "cpu")
    assert dv.resolve() == torch.device("cpu")
    monkeypatch.setenv(dv.ENV, "cuda:7")
    assert dv.resolve("cpu") == torch.device("cpu")  # an explicit device ignores the variable
    monkeypatch.setenv(dv.ENV, "gpu0")
    with pytest.raises(ValueError, match=r"^SEMLIB_DEVICE: unknown device 'gpu0'; use auto, cpu, cuda or cuda:N$"):
        dv.resolve()


def test_workers_resolve_what_the_driver_asked_for(monkeypatch):
    monkeypatch.delenv(dv.ENV, raising=False)
    assert dv.request() == "auto" and dv.request("auto") == "auto" and dv.request("cpu") == "cpu"
    monkeypatch.setenv(dv.ENV, "cpu")
    assert dv.request() == "cpu" and dv.request("cuda:1") == "cuda:1"


@pytest.mark.parametrize("name, fragment", [
    ("gpu0", "device: unknown device 'gpu0'"),
    ("meta", "device: device 'meta' is not supported"),
    ("cuda:7", "device: 'cuda:7' asked for, but"),  # no GPU here; one GPU on a GPU machine
])
def test_bad_device_names(name, fragment, monkeypatch):
    monkeypatch.delenv(dv.ENV, raising=False)
    with pytest.raises(ValueError) as info:
        dv.resolve(name)
    assert str(info.value).startswith(fragment) and "\n" not in str(info.value)


def test_a_gpu_generator_seeds_the_draws_through_a_derived_cpu_generator():
    """The derivation used for GPU generators, run on CPU generators (the same code): equal
    sources give equal streams, the source advances, the global RNG is not touched."""
    assert draw_generator(None) is None
    g = torch.Generator().manual_seed(3)
    assert draw_generator(g) is g  # a CPU generator drives the draws itself
    state = torch.get_rng_state()
    a = derived_cpu_generator(torch.Generator().manual_seed(3))
    b = derived_cpu_generator(torch.Generator().manual_seed(3))
    assert a.device.type == "cpu" and torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))
    src = torch.Generator().manual_seed(3)
    first, second = derived_cpu_generator(src).initial_seed(), derived_cpu_generator(src).initial_seed()
    assert first != second
    assert torch.equal(state, torch.get_rng_state())


def test_shards_record_the_device_that_computed_them(data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(dv.ENV, raising=False)
    s = Study("laptop", StudyConfig.from_dict(TINY), threshold=0.2, data_dir=data_dir, cache_dir=tmp_path,
              device="cpu")
    assert json.loads(s.recipe())["device"] == "cpu"
    s.curves([CurveSpec("I", "bim")], progress=False)
    manifests = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert manifests and all(m["computed_on"] == {"device": "cpu", "cpu_capability": cpu_capability()}
                                 for m in manifests)
    assert json.loads(Study("laptop", s.cfg, data_dir=data_dir, cache_dir=tmp_path).recipe())["device"] == "auto"
    monkeypatch.setenv(dv.ENV, "cpu")  # Ray workers resolve what the driver asked for, its variable included
    assert json.loads(Study("laptop", s.cfg, data_dir=data_dir, cache_dir=tmp_path).recipe())["device"] == "cpu"


def _tiny_sem(device: str) -> StochasticEnsemble:
    torch.manual_seed(0)
    members = {f"m{i}": NoisyClassifier(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).to(device), 0.25)
               for i in range(4)}
    return StochasticEnsemble(members, {n: n for n in members}, (1, 3))


@cuda
def test_sem_on_a_gpu_follows_its_cuda_generator():
    sem = _tiny_sem("cuda")
    x = torch.rand(16, 3, 32, 32, device="cuda")
    cpu_state, gpu_state = torch.get_rng_state(), torch.cuda.get_rng_state()
    a = sem(x, torch.Generator("cuda").manual_seed(1))
    mask_a = sem.last_draw.clone()
    b = sem(x, torch.Generator("cuda").manual_seed(1))
    assert torch.equal(a, b) and torch.equal(mask_a, sem.last_draw)
    assert torch.equal(cpu_state, torch.get_rng_state()) and torch.equal(gpu_state, torch.cuda.get_rng_state())
    c = sem(x, torch.Generator("cuda").manual_seed(2))
    assert not torch.equal(a, c)


@cuda
def test_a_study_on_a_gpu_is_seeded_and_records_the_gpu(data_dir, tmp_path):
    cfg = StudyConfig.from_dict(TINY)
    rows = [Study("laptop", cfg, threshold=0.2, data_dir=data_dir, cache_dir=tmp_path / d, device="cuda").curves(
        [CurveSpec("A", "bim"), CurveSpec("F", "pgd", "targeted")], progress=False) for d in ("a", "b")]
    assert rows[0].equals(rows[1])
    manifest = json.loads(next((tmp_path / "a").glob("*.json")).read_text())
    assert manifest["computed_on"]["device"] == torch.cuda.get_device_name(0)
