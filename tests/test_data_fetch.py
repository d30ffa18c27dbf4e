"""Getting CIFAR-10 onto a fresh machine (semlib.fetch) and reading batches without running them.

The download tests serve a small stand-in archive (official layout, constant pixels) from a
loopback HTTP server; nothing leaves 127.0.0.1.
"""
import hashlib
import http.server
import io
import os
import pickle
import socket
import struct
import tarfile
import threading

import numpy as np
import pytest

from semlib import data, fetch

N = {"train": 50_000, "test": 10_000}


def _labels(split):
    return (np.arange(N[split]) * 7 % 10).astype(np.uint8)  # balanced, not the canonical order


def _pixels(split):
    """uint8 [n, 3072] CHW rows: image i is constant (its label * 20, plus 1 for the test split)."""
    value = _labels(split) * 20 + (split == "test")
    return np.repeat(value[:, None], 3072, axis=1)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """A cifar-10-python.tar.gz in the official layout, plus members that must never be written."""
    path = tmp_path_factory.mktemp("archive") / "cifar-10-python.tar.gz"
    members = {"cifar-10-batches-py/readme.html": b"<html></html>",
               "cifar-10-batches-py/batches.meta": pickle.dumps({"label_names": list(data.CLASSES)}),
               "../escaped.txt": b"outside", "cifar-10-batches-py/../../escaped2.txt": b"outside"}
    for split, names in (("train", data._PY_BATCHES["train"]), ("test", ["test_batch"])):
        x, y = _pixels(split), _labels(split)
        for i, name in enumerate(names):
            sl = slice(i * 10_000, (i + 1) * 10_000)
            members[f"cifar-10-batches-py/{name}"] = pickle.dumps(
                {b"batch_label": b"stand-in", b"labels": y[sl].tolist(), b"data": x[sl]}, protocol=2)
    with tarfile.open(path, "w:gz", compresslevel=1) as tf:
        tf.addfile(_dir("cifar-10-batches-py"))
        for name, raw in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    return path


def _dir(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


@pytest.fixture
def server(archive):
    """Serves the archive at http://127.0.0.1:<port>/cifar-10-python.tar.gz; counts the requests."""
    body = archive.read_bytes()
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            if self.path != "/cifar-10-python.tar.gz":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.timeout = 5
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", hits, hashlib.sha256(body).hexdigest()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """An empty working directory with no SEMLIB_DATA: a fresh machine."""
    monkeypatch.delenv("SEMLIB_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fresh_machine_downloads_converts_once(server, fresh, monkeypatch):
    url, hits, sha = server
    monkeypatch.setenv("SEMLIB_CIFAR10_URL", f"{url}/cifar-10-python.tar.gz")
    monkeypatch.setenv("SEMLIB_CIFAR10_SHA256", sha)
    monkeypatch.setenv("SEMLIB_DATA_VERIFY", "0")  # a stand-in, not the canonical arrays
    with pytest.warns(UserWarning, match="not the canonical copy"):
        test = data.load_split("test")  # the default fetches: nothing passes download
    target = fresh / "data"
    assert sorted(p.name for p in target.iterdir()) == sorted(data._SHARDS["train"] + data._SHARDS["test"])
    assert len(hits) == 1 and not (fresh / "escaped.txt").exists() and not (fresh / "escaped2.txt").exists()
    assert test.source == str(target.resolve())
    assert np.array_equal(test.y.numpy(), _labels("test"))
    assert np.array_equal(test.x.reshape(10_000, -1).numpy(), _pixels("test"))
    assert np.array_equal(np.flatnonzero(test.jpeg_fallback.numpy()), data.JPEG_FALLBACK["test"])
    with np.load(target / "cifar10_train_batch3.npz", allow_pickle=False) as z:
        assert z["x"].shape == (10_000, 32, 32, 3) and z["x"].dtype == np.uint8 and int(z["start"]) == 20_000
        assert z["y"].dtype == np.uint8 and z["jpeg_fallback"].dtype == bool
    with pytest.warns(UserWarning):
        train = data.load_split("train")
    assert np.array_equal(train.y.numpy(), _labels("train")) and len(hits) == 1  # no second download
    assert data.find_data_dir() == data.DEFAULT_DIR and len(hits) == 1


def test_wrong_sha256_is_one_line_and_deleted(server, fresh, monkeypatch):
    url, hits, _ = server
    monkeypatch.setenv("SEMLIB_CIFAR10_URL", f"{url}/cifar-10-python.tar.gz")
    monkeypatch.setenv("SEMLIB_CIFAR10_SHA256", "0" * 64)
    with pytest.raises(data.DataIntegrityError, match=f"the download from {url}.* has sha256 .*expected 0000") as e:
        data.load_split("test", fresh / "target")
    assert "\n" not in str(e.value) and len(hits) == 1
    assert not (fresh / "target").exists()  # the download was deleted, and the folder made for it


@pytest.mark.parametrize("where, reason", [("down", "connection refused"), ("404", "HTTP 404")])
def test_failed_download_names_every_place(where, reason, server, fresh, monkeypatch):
    url = f"http://127.0.0.1:{_closed_port()}/cifar-10-python.tar.gz" if where == "down" else f"{server[0]}/nothing"
    monkeypatch.setenv("SEMLIB_CIFAR10_URL", url)
    monkeypatch.setenv("SEMLIB_DATA", str(fresh / "env_dir"))
    with pytest.raises(data.DataNotFoundError) as e:
        data.eval_subset(10, fresh / "arg_dir")
    msg = str(e.value)
    assert msg.startswith("CIFAR-10 not found. Looked for") and "\n" not in msg
    assert not (fresh / "arg_dir").exists()
    failed = f"the download from {url} failed ({reason})"
    assert all(s in msg for s in ("arg_dir", "env_dir", str(fresh / "data"), failed))
    assert e.value.__cause__ is None


def test_bad_sha256_setting_is_one_line(fresh, monkeypatch):
    monkeypatch.setenv("SEMLIB_CIFAR10_SHA256", "abc")
    with pytest.raises(ValueError, match="SEMLIB_CIFAR10_SHA256='abc' is not a sha256"):
        data.load_split("test", fresh / "x")


# -- reading batches: data only, never code ---------------------------------------------------

class _Evil:
    def __init__(self, call, args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def _folder_with_test_batch(tmp_path, raw: bytes):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in data._PY_BATCHES["train"]:
        (folder / name).write_bytes(b"")  # never read for the test split
    (folder / "test_batch").write_bytes(raw)
    return folder


@pytest.mark.parametrize("kind", ["os.system", "builtins.open"])
def test_malicious_batch_is_refused_not_run(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("SEMLIB_DATA_VERIFY", "1")
    marker = tmp_path / "pwned"
    evil = _Evil(os.system, (f"touch {marker}",)) if kind == "os.system" else _Evil(open, (str(marker), "w"))
    folder = _folder_with_test_batch(tmp_path, pickle.dumps({"data": evil, "labels": [0]}))
    with pytest.raises(pickle.UnpicklingError, match="refused to unpickle the global") as e:
        data.load_split("test", tmp_path, download=False)
    msg = str(e.value)
    assert str(folder / "test_batch") in msg and f"{evil.call.__module__}.{evil.call.__name__}" in msg
    assert "\n" not in msg and not marker.exists()


def _batch_arrays(n=20):
    x = np.random.default_rng(0).integers(0, 256, (n, 3072), dtype=np.uint8)
    return x, [i % 10 for i in range(n)]


def _py2_pickle(x: np.ndarray, labels: list) -> bytes:
    """A batch as Python 2's cPickle wrote the official files: protocol 2, str keys and data, and
    numpy.core.multiarray._reconstruct (hand-assembled opcodes)."""
    def s(b):  # SHORT_BINSTRING / BINSTRING: a Python 2 str
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b

    def i(v):  # BININT
        return b"J" + struct.pack("<i", v)

    dtype = (b"cnumpy\ndtype\n" + s(b"u1") + i(0) + i(1) + b"\x87R"
             + b"(" + i(3) + s(b"|") + b"NNN" + i(-1) + i(-1) + i(0) + b"tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + i(0) + b"\x85" + s(b"b") + b"\x87R"
             + b"(" + i(1) + i(x.shape[0]) + i(x.shape[1]) + b"\x86" + dtype + b"\x89" + s(x.tobytes()) + b"tb")
    return (b"\x80\x02}(" + s(b"batch_label") + s(b"testing batch 1 of 1") + s(b"data") + array
            + s(b"labels") + b"](" + b"".join(i(v) for v in labels) + b"eu.")


@pytest.mark.parametrize("form", ["python2 cPickle", "protocol 2 bytes keys", "protocol 5 str keys"])
def test_batch_pickles_load(form):
    x, labels = _batch_arrays()
    if form == "python2 cPickle":
        raw = _py2_pickle(x, labels)
    elif form == "protocol 2 bytes keys":
        raw = pickle.dumps({b"batch_label": b"b", b"data": x, b"labels": labels, b"filenames": [b"a.png"]}, protocol=2)
    else:
        raw = pickle.dumps({"data": x, "labels": np.array(labels)}, protocol=5)
    got_x, got_y = fetch.read_batch(io.BytesIO(raw), "batch")
    assert got_x.shape == (20, 32, 32, 3) and got_y.dtype == np.uint8 and got_y.tolist() == labels
    assert np.array_equal(got_x.transpose(0, 3, 1, 2).reshape(20, -1), x)


BAD_BATCHES = [
    ("not a dict", lambda x, y: [x, y], "holds a list, not a dict"),
    ("no labels", lambda x, y: {"data": x}, "lacks the 'data' or 'labels' entry"),
    ("float data", lambda x, y: {"data": x.astype(np.float32), "labels": y}, "'data' is float32 \\(20, 3072\\)"),
    ("data not an array", lambda x, y: {"data": x.tolist(), "labels": y}, "'data' is list"),
    ("label out of range", lambda x, y: {"data": x, "labels": [12] + y[1:]}, "label 12 of image 0 is outside 0..9"),
    ("labels too short", lambda x, y: {"data": x, "labels": y[:5]}, "'labels' is not 20 integers"),
    ("truncated", None, "cannot read CIFAR-10 batch"),
]


@pytest.mark.parametrize("name, make, pattern", BAD_BATCHES, ids=[b[0] for b in BAD_BATCHES])
def test_malformed_batch_is_one_line(name, make, pattern):
    x, y = _batch_arrays()
    raw = pickle.dumps({"data": x, "labels": y})[:100] if make is None else pickle.dumps(make(x, y))
    with pytest.raises(ValueError, match=pattern) as e:
        fetch.read_batch(io.BytesIO(raw), "/some/where/data_batch_9")
    assert "/some/where/data_batch_9" in str(e.value) and "\n" not in str(e.value)
