import json
import os
import pickle

import pytest
import torch

from semlib import artifacts
from semlib.data import load_split
from semlib.models import build_model
from semlib.training import TrainConfig, augment, lr_at, train
from semlib.zoo import SubModelSpec, ZooSpec, evaluate_submodel, load_submodel, train_zoo, zoo_table


def test_loss_falls_on_a_small_real_subset(data_dir):
    torch.manual_seed(0)
    d = load_split("train", data_dir)
    model = build_model("vgg11", width=0.125, stem_stride=2)
    cfg = TrainConfig(epochs=6, n_train=256, batch_size=64, lr=0.05, bf16=False, label_smoothing=0.0)
    result = train(model, d.x, d.y, cfg, progress=False)
    assert len(result.losses) == 6
    assert result.losses[-1] < 0.8 * result.losses[0]


def test_augment_is_a_crop_and_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 32, 32)
    out = augment(x, g, pad=0)  # no padding: each image is itself or its mirror image
    for a, b in zip(x, out):
        assert torch.equal(a, b) or torch.equal(a.flip(-1), b)
    out = augment(x, torch.Generator().manual_seed(1), pad=4)
    assert out.shape == x.shape
    # a crop keeps a 24x24 window of the original somewhere (shift <= 4 pixels)
    assert torch.isclose(out, x).float().mean() < 1.0


def test_lr_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 1.0, 0.2) for s in range(100)]
    assert lrs[19] == pytest.approx(1.0) and lrs[0] == pytest.approx(0.05)
    assert lrs[-1] < 0.02 and all(a >= b for a, b in zip(lrs[19:], lrs[20:]))


def _tiny(arch="resnet18"):
    return build_model(arch, width=0.0625, depth=0.5, stem_stride=2).eval()


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = _tiny()
    card = artifacts.save_checkpoint(model, tmp_path / "m.safetensors", {"name": "m"})
    assert card["sha256"] == artifacts.sha256_file(tmp_path / "m.safetensors")
    again = artifacts.load_weights(_tiny(), tmp_path / "m.safetensors")
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), again(x), atol=2e-2)  # weights stored in fp16
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-3, rtol=1e-3), k


def test_as_stored_is_exactly_what_a_checkpoint_gives_back(tmp_path):
    torch.manual_seed(0)
    model = _tiny()
    model.body[0][1].running_var.uniform_(0.5, 2.0)  # buffers are rounded too
    before = {k: v.clone() for k, v in model.state_dict().items()}
    artifacts.save_checkpoint(model, tmp_path / "m.safetensors", {"name": "m"})
    loaded = artifacts.load_weights(_tiny(), tmp_path / "m.safetensors").state_dict()
    assert any(not torch.equal(before[k], loaded[k]) for k in before)  # fp16 changes fp32 weights
    artifacts.as_stored(model)
    for k, v in model.state_dict().items():
        assert v.dtype == before[k].dtype and torch.equal(v, loaded[k]), k


def test_foreign_checkpoint_is_refused(tmp_path):
    artifacts.save_checkpoint(_tiny("resnet18"), tmp_path / "m.safetensors", {})
    with pytest.raises(artifacts.CheckpointError, match="does not fit"):
        artifacts.load_weights(_tiny("vgg11"), tmp_path / "m.safetensors")


def test_corrupt_or_tampered_checkpoint_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    artifacts.save_checkpoint(_tiny(), path, {})
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(artifacts.CheckpointError, match="sha256"):
        artifacts.load_weights(_tiny(), path)
    path.write_bytes(b"not a safetensors file")
    card = json.loads(artifacts.card_path(path).read_text())
    card["sha256"] = artifacts.sha256_file(path)
    artifacts.card_path(path).write_text(json.dumps(card))
    with pytest.raises(artifacts.CheckpointError, match="corrupt"):
        artifacts.load_weights(_tiny(), path)


def test_pickle_checkpoints_are_never_loaded(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(artifacts.CheckpointError, match="only safetensors"):
        artifacts.load_weights(_tiny(), bad)
    renamed = tmp_path / "evil.safetensors"
    renamed.write_bytes(bad.read_bytes())
    artifacts.card_path(renamed).write_text(json.dumps({"sha256": artifacts.sha256_file(renamed)}))
    with pytest.raises(artifacts.CheckpointError):
        artifacts.load_weights(_tiny(), renamed)
    assert not marker.exists()


def _spec():
    return ZooSpec.from_dict({
        "name": "t", "sigmas": [0.0, 0.25],
        "models": [{"arch": "vgg11", "width": 0.0625, "stem_stride": 2}],
        "train": {"epochs": 1, "n_train": 128, "batch_size": 64, "bf16": False},
        "finetune": {"epochs": 1},
        "evaluate": {"n_test": 50, "aca_images": 8, "n0": 4, "n": 16, "alpha": 0.01},
    })


def test_zoo_trains_resumes_and_loads(data_dir, tmp_path):
    spec = _spec()
    df = train_zoo(spec, tmp_path, data_dir, progress=False)
    assert df.name.tolist() == ["vgg11_s0", "vgg11_s0.25"]
    assert df.init_from.tolist()[1] == "vgg11_s0"
    assert df.aca.isna().tolist() == [True, False]
    mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    train_zoo(spec, tmp_path, data_dir, progress=False)  # everything finished: nothing retrained
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    # an unfinished model (weights without a card) is retrained, the finished one kept
    (tmp_path / "vgg11_s0.25.json").unlink()
    train_zoo(spec, tmp_path, data_dir, progress=False)
    assert (tmp_path / "vgg11_s0.json").stat().st_mtime_ns == mtimes["vgg11_s0.json"]
    assert (tmp_path / "vgg11_s0.25.json").exists()
    # a retrained parent makes its fine-tuned children stale
    child_mtime = (tmp_path / "vgg11_s0.25.json").stat().st_mtime_ns
    (tmp_path / "vgg11_s0.json").unlink()
    train_zoo(spec, tmp_path, data_dir, progress=False)
    assert (tmp_path / "vgg11_s0.25.json").stat().st_mtime_ns != child_mtime
    sub = load_submodel(tmp_path, "vgg11_s0.25")
    assert sub.sigma == 0.25 and not sub.training
    assert len(zoo_table(tmp_path)) == 2
    # the card's numbers describe the shipped (fp16) weights: re-evaluating them gives the same
    card = artifacts.read_card(tmp_path / "vgg11_s0.25.safetensors")
    again = evaluate_submodel(sub.base, spec.submodel("vgg11", 0.25), spec.eval_config(), data_dir)
    assert (again["clean_accuracy"], again["aca"]) == (card["clean_accuracy"], card["aca"])


def test_zoo_spec_errors():
    with pytest.raises(ValueError, match="unknown keys"):
        ZooSpec.from_dict({"name": "x", "sigmas": [0], "models": [], "epochs": 3})
    with pytest.raises(ValueError, match="unknown architecture"):
        ZooSpec.from_dict({"name": "x", "sigmas": [0], "models": [{"arch": "resnet19"}]})
    with pytest.raises(ValueError, match="sigmas must include 0"):
        ZooSpec.from_dict({"name": "x", "sigmas": [0.25], "models": [{"arch": "vgg11"}]})
    with pytest.raises(ValueError, match="sigma"):
        ZooSpec.from_dict({"name": "x", "sigmas": [0, -1], "models": [{"arch": "vgg11"}]})


def test_missing_submodel_message(tmp_path):
    with pytest.raises(artifacts.CheckpointError, match="make zoo"):
        load_submodel(tmp_path, "vgg11_s0")


def test_submodel_names():
    assert SubModelSpec("wrn28_10", 0.12).name == "wrn28_10_s0.12"
    assert SubModelSpec("vgg11", 0.0).name == "vgg11_s0"
