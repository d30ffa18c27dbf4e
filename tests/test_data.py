import pickle

import numpy as np
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
        data.load_split("test", tmp_path / "arg_dir", download=False)
    msg = str(e.value)
    assert "arg_dir" in msg and "env_dir" in msg and "SEMLIB_DATA" in msg and "\n" not in msg
    assert "download=True" in msg and not (tmp_path / "arg_dir").exists()


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
    """The cifar-10-batches-py layout loads to the same arrays as the shards, with the same
    fallback mask; other pixels at the 111 fallback indices (as in the official copy) pass the check."""
    test = data.load_split("test", data_dir)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    x = test.x.clone()
    fallback = list(data.JPEG_FALLBACK["test"])
    x[fallback] = 255 - x[fallback]  # stands in for the official (lossless) pixels of those images
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"data": x.reshape(10_000, -1).numpy(), "labels": test.y.tolist()}, fh)
    train = data.load_split("train", data_dir)
    for i in range(5):
        sl = slice(i * 10_000, (i + 1) * 10_000)
        with open(folder / f"data_batch_{i + 1}", "wb") as fh:
            pickle.dump({"data": train.x[sl].reshape(10_000, -1).numpy(), "labels": train.y[sl].tolist()}, fh)
    got = data.load_split("test", tmp_path)
    assert torch.equal(got.x, x) and torch.equal(got.y, test.y)
    assert torch.equal(got.jpeg_fallback, test.jpeg_fallback) and int(got.jpeg_fallback.sum()) == 25
    assert got.source == str(folder.resolve())


def test_fallback_constants_match_source_md(data_dir):
    text = (data_dir / "SOURCE.md").read_text()
    for split, head in (("train", "Train (86): "), ("test", "Test (25): ")):
        listed = text.split(head)[1].split("\n\n")[0].replace("\n", " ")
        assert tuple(int(v) for v in listed.split(",")) == data.JPEG_FALLBACK[split]
    assert data.CANONICAL_SHA256["test"]["labels"] in text and data.CANONICAL_SHA256["train"]["labels"] in text


def _tampered(data_dir, tmp_path, change, key="y"):
    """A copy of the shards in tmp_path whose test shard has ``arrays[key] = change(arrays)``."""
    for f in data._SHARDS["train"]:
        (tmp_path / f).symlink_to(data_dir / f)
    with np.load(data_dir / "cifar10_test.npz") as z:
        arrays = {k: z[k] for k in z.files}
    if change is None:
        del arrays[key]
    else:
        arrays[key] = change(arrays)
    np.savez(tmp_path / "cifar10_test.npz", **arrays)  # uncompressed: fast to write
    return tmp_path


def _swap_labels(a):
    y = a["y"].copy()
    i = int(np.flatnonzero(y != y[0])[0])
    y[0], y[i] = y[i], y[0]  # class counts unchanged
    return y


def _flip_image(a):
    x = a["x"].copy()
    x[5] = x[5, :, ::-1]
    return x


def _unflag(a):
    f = a["jpeg_fallback"].copy()
    f[260] = False
    return f


TAMPERED = [
    ("shuffled labels", "y", _swap_labels, "test labels in .*cifar10_test.npz: not the canonical copy .*shuffled"),
    ("flipped image", "x", _flip_image, "test images in .*cifar10_test.npz: not the canonical copy .*flipped"),
    ("fallback mask", "jpeg_fallback", _unflag, "test jpeg_fallback mask in .*cifar10_test.npz.*image 260"),
]


@pytest.mark.parametrize("name, key, change, pattern", TAMPERED, ids=[t[0] for t in TAMPERED])
def test_tampered_copy_is_refused(name, key, change, pattern, data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("SEMLIB_DATA_VERIFY", raising=False)
    d = _tampered(data_dir, tmp_path, change, key)
    with pytest.raises(data.DataIntegrityError, match=pattern) as e:
        data.load_split("test", d)
    msg = str(e.value)
    assert "\n" not in msg and "SEMLIB_DATA_VERIFY=0" in msg and "re-copy" in msg


def test_verify_off_warns_and_loads(data_dir, tmp_path, monkeypatch):
    d = _tampered(data_dir, tmp_path, _swap_labels)
    monkeypatch.setenv("SEMLIB_DATA_VERIFY", "0")
    with pytest.warns(UserWarning, match="test labels in .*using it anyway") as rec:
        got = data.load_split("test", d)
    assert len(got) == 10_000 and all("\n" not in str(w.message) for w in rec)
    monkeypatch.setenv("SEMLIB_DATA_VERIFY", "1")  # the cached copy does not skip the check
    with pytest.raises(data.DataIntegrityError):
        data.load_split("test", d)


MALFORMED = [
    ("out-of-range label", "y", lambda a: np.where(np.arange(10_000) == 3, 10, a["y"]).astype(np.uint8),
     r"cifar10_test.npz is malformed: label 10 of image 3 is outside 0..9"),
    ("wrong dtype", "y", lambda a: a["y"].astype(np.int64),
     r"cifar10_test.npz is malformed: y is int64, expected uint8"),
    ("wrong shape", "x", lambda a: a["x"][:, :16], r"cifar10_test.npz is malformed: x has shape \(10000, 16, 32, 3\)"),
    ("missing key", "jpeg_fallback", None, r"cifar10_test.npz is malformed: missing key\(s\) jpeg_fallback"),
    ("object array", "y", lambda a: np.array([None] * 10_000, dtype=object),
     r"cannot read CIFAR-10 shard .*cifar10_test.npz"),
]


@pytest.mark.parametrize("name, key, change, pattern", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_shard_is_one_line(name, key, change, pattern, data_dir, tmp_path):
    d = _tampered(data_dir, tmp_path, change, key)
    with pytest.raises(ValueError, match=pattern) as e:
        data.load_split("test", d)
    assert "\n" not in str(e.value) and not isinstance(e.value, data.DataIntegrityError)
