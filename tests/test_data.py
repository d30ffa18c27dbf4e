import pickle

import pytest
import torch

from semlib import data


def test_counts_order_and_fallback_mask(data_dir):
    train, test = data.load_split("train", data_dir), data.load_split("test", data_dir)
    assert train.x.shape == (50_000, 3, 32, 32) and train.x.dtype == torch.uint8
    assert test.x.shape == (10_000, 3, 32, 32)
    # canonical order (SOURCE.md)
    assert train.y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert test.y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert int(train.jpeg_fallback.sum()) == 86 and int(test.jpeg_fallback.sum()) == 25
    assert bool(test.jpeg_fallback[260]) and not bool(test.jpeg_fallback[259])
    assert test.sha256() == "ca999a174ec711bbad89d5cc53d425e155595742a396a5ba95d0a218eac0704a"


def test_images_are_float_pixels(data_dir):
    x = data.load_split("test", data_dir).images(slice(0, 8))
    assert x.dtype == torch.float32 and x.shape == (8, 3, 32, 32)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_eval_subset_skips_jpeg_fallbacks(data_dir):
    x, y, idx = data.eval_subset(300, data_dir)
    assert len(x) == len(y) == len(idx) == 300
    assert 260 not in idx.tolist()  # the first fallback test image
    assert idx[:5].tolist() == [0, 1, 2, 3, 4] and idx[-1] == 300
    _, _, idx_all = data.eval_subset(300, data_dir, include_fallback=True)
    assert idx_all[-1] == 299


def test_eval_subset_bad_n(data_dir):
    with pytest.raises(ValueError, match="n must be between 1 and 9975"):
        data.eval_subset(20_000, data_dir)


def test_missing_data_names_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMLIB_DATA", str(tmp_path / "env_dir"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(data.DataNotFoundError) as e:
        data.load_split("test", tmp_path / "arg_dir")
    msg = str(e.value)
    assert "arg_dir" in msg and "env_dir" in msg and "SEMLIB_DATA" in msg and "\n" not in msg


def test_truncated_shard_is_reported(data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("SEMLIB_DATA", raising=False)
    for f in data_dir.glob("*.npz"):
        (tmp_path / f.name).symlink_to(f)
    (tmp_path / "cifar10_test.npz").unlink()
    raw = (data_dir / "cifar10_test.npz").read_bytes()
    (tmp_path / "cifar10_test.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="cannot read CIFAR-10 shard .*cifar10_test.npz"):
        data.load_split("test", tmp_path)


def test_torchvision_folder_layout(data_dir, tmp_path):
    """The cifar-10-batches-py layout loads to the same arrays as the shards."""
    test = data.load_split("test", data_dir)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    flat = test.x.reshape(10_000, -1).numpy()
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"data": flat, "labels": test.y.tolist()}, fh)
    train = data.load_split("train", data_dir)
    for i in range(5):
        sl = slice(i * 10_000, (i + 1) * 10_000)
        with open(folder / f"data_batch_{i + 1}", "wb") as fh:
            pickle.dump({"data": train.x[sl].reshape(10_000, -1).numpy(), "labels": train.y[sl].tolist()}, fh)
    got = data.load_split("test", tmp_path)
    assert torch.equal(got.x, test.x) and torch.equal(got.y, test.y)
    assert not bool(got.jpeg_fallback.any())
