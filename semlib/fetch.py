"""The official CIFAR-10 python archive: download it, read its batches safely, convert once.

:func:`fetch` downloads ``cifar-10-python.tar.gz`` (170 MB) with pooch (progress bar, sha256
checked, a short connect timeout) from ``$SEMLIB_CIFAR10_URL`` (default :data:`OFFICIAL_URL`),
expecting the sha256 ``$SEMLIB_CIFAR10_SHA256`` (default :data:`OFFICIAL_SHA256`); both can
point at a mirror or a local test server. It then writes the six ``.npz`` shards of
:mod:`semlib.data` beside it and deletes the archive. The batches are read straight out of the
tarball, only under their expected member names, so nothing is extracted and no member can write
outside the folder; each shard is written to a temporary name and renamed when all six are done.

:func:`read_batch` reads one pickled batch with an unpickler that only rebuilds numpy arrays:
a file that asks for anything else (e.g. ``os.system``) is refused, never run.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import re
import tarfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .cifar10 import (_PY_BATCHES, _SHARDS, DataIntegrityError, DataNotFoundError, fallback_mask, label_problem,
                      not_found_message, one_line)

URL_ENV = "SEMLIB_CIFAR10_URL"
SHA256_ENV = "SEMLIB_CIFAR10_SHA256"
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
ARCHIVE = "cifar-10-python.tar.gz"
MEMBER_DIR = "cifar-10-batches-py"
TIMEOUT = (10, 60)  # seconds: to connect, and between two reads
BATCH_SIZE = 10_000
_MAX_MEMBER_BYTES = 64 << 20  # an official batch is about 31 MB


def archive_source() -> tuple[str, str]:
    """The archive's URL and sha256 (hex), from the environment or the official defaults."""
    url = os.environ.get(URL_ENV) or OFFICIAL_URL
    raw = os.environ.get(SHA256_ENV) or OFFICIAL_SHA256
    sha = raw.strip().lower().removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ValueError(f"{SHA256_ENV}={raw!r} is not a sha256 (64 hex digits); unset it to use the official one")
    return url, sha


def fetch(root: Path, looked: list[Path] | None = None) -> Path:
    """Download the archive into ``root``, convert it to the six shards there, return ``root``.

    Parameters
    ----------
    root : Path
        Where the archive and the shards go (created if missing).
    looked : list of Path, optional
        The places already looked in, named in the error if the download fails.

    Raises
    ------
    DataNotFoundError
        The download failed (offline, refused, timed out, HTTP error) or ``root`` is not writable.
    DataIntegrityError
        The downloaded file's sha256 is not the expected one (the file is deleted).
    """
    url, sha = archive_source()
    looked = looked or [root]
    created = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataNotFoundError(not_found_message(
            looked, f"cannot create {root.resolve()} to download into ({e.strerror or e})")) from None
    try:
        archive = _download(url, sha, root, looked)
    except Exception:
        if created:  # leave no empty folder behind
            with contextlib.suppress(OSError):
                root.rmdir()
        raise
    convert(archive, root)
    archive.unlink(missing_ok=True)
    return root


def _download(url: str, sha: str, root: Path, looked: list[Path]) -> Path:
    import pooch

    downloader = pooch.HTTPDownloader(progressbar=True, timeout=TIMEOUT, chunk_size=1 << 20)
    try:
        return Path(pooch.retrieve(url, known_hash=f"sha256:{sha}", fname=ARCHIVE, path=root,
                                   downloader=downloader))
    except Exception as e:  # requests' errors, pooch's hash mismatch, OSError
        if "does not match the known hash" in str(e):  # pooch has deleted the download
            got = re.search(r"but got ([0-9a-fA-F]{64})", str(e))
            raise DataIntegrityError(
                f"the download from {url} has sha256 {got.group(1) if got else '?'}, expected {sha}; it was "
                f"deleted. Retry (a broken transfer or a proxy?), or if you trust this archive set "
                f"{SHA256_ENV} to its hash") from None
        raise DataNotFoundError(not_found_message(looked, f"the download from {url} failed ({_reason(e)})")) from None


def _reason(e: Exception) -> str:
    """A few words on why a download failed."""
    import requests

    text = str(e)
    if isinstance(e, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(e, requests.exceptions.HTTPError) and e.response is not None:
        return f"HTTP {e.response.status_code}"
    for needle, words in (("Connection refused", "connection refused"),
                          ("Name or service not known", "host name not resolved; offline?"),
                          ("Temporary failure in name resolution", "host name not resolved; offline?"),
                          ("nodename nor servname", "host name not resolved; offline?"),
                          ("getaddrinfo failed", "host name not resolved; offline?"),
                          ("Network is unreachable", "network unreachable")):
        if needle in text:
            return words
    if isinstance(e, requests.exceptions.ConnectionError):
        return "no connection"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return f"{type(e).__name__}: {one_line(e)}"[:160]


def convert(archive: Path, root: Path) -> None:
    """Write the six ``.npz`` shards into ``root`` from the batches in ``archive``.

    Only the members ``cifar-10-batches-py/{data_batch_1..5,test_batch}`` are read (in memory);
    every other member (``batches.meta``, ``readme.html``) is skipped, nothing is extracted.
    The shards (keys ``x`` uint8 HWC, ``y`` uint8, ``jpeg_fallback`` bool, ``start`` int64) are
    written to temporary names and renamed only once all six are written.
    """
    import pooch

    pooch.get_logger().info("Converting %s to the six .npz shards in %s", archive.name, root)
    wanted = {f"{MEMBER_DIR}/{b}": (split, i) for split in ("train", "test") for i, b in enumerate(_PY_BATCHES[split])}
    written: dict[str, Path] = {}
    try:
        with tarfile.open(archive, "r:gz") as tf:
            for member in tf:
                if member.name not in wanted:
                    continue
                split, i = wanted[member.name]
                shard = _SHARDS[split][i]
                where = f"{archive}:{member.name}"
                if not member.isfile() or member.size > _MAX_MEMBER_BYTES or shard in written:
                    raise ValueError(f"{where} is not a single regular file under {_MAX_MEMBER_BYTES >> 20} MB; "
                                     f"this is not the official archive, delete it")
                x, y = read_batch(tf.extractfile(member), where)
                if len(y) != BATCH_SIZE:
                    raise ValueError(f"{where} holds {len(y)} images, expected {BATCH_SIZE}; delete the archive")
                start = i * BATCH_SIZE
                written[shard] = _save_tmp(root / shard, x=np.ascontiguousarray(x), y=y, start=np.int64(start),
                                           jpeg_fallback=fallback_mask(split)[start:start + BATCH_SIZE])
        missing = [m for m, (s, i) in wanted.items() if _SHARDS[s][i] not in written]
        if missing:
            raise ValueError(f"{archive} lacks {', '.join(missing)}; this is not the official archive, delete it")
        for shard, tmp in written.items():
            os.replace(tmp, root / shard)
        written.clear()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ValueError(f"cannot read {archive} ({one_line(e)}); delete it and download again") from None
    finally:
        for tmp in written.values():
            tmp.unlink(missing_ok=True)


def _save_tmp(dest: Path, **arrays: np.ndarray) -> Path:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:  # a file object: savez would append .npz to a name
        np.savez_compressed(fh, **arrays)
    return tmp


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR-10 batch holds: dicts, lists, strings and numpy arrays."""

    def __init__(self, fh: BinaryIO, path: str):
        super().__init__(fh, encoding="latin1")  # latin1: numpy arrays pickled by Python 2
        self._path = path

    def find_class(self, module: str, name: str):
        allowed = _allowed_globals().get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(
                f"{self._path}: refused to unpickle the global {module}.{name}; a CIFAR-10 batch holds only "
                f"numpy arrays and lists, so this file is not one (possibly malicious): delete it and re-download")
        return allowed


def _allowed_globals() -> dict:
    try:  # numpy >= 2
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric
    out = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): _latin1_bytes}
    for mod in ("numpy.core", "numpy._core"):  # names written by numpy 1.x / 2.x
        out[(f"{mod}.multiarray", "_reconstruct")] = multiarray._reconstruct
        out[(f"{mod}.numeric", "_frombuffer")] = numeric._frombuffer  # arrays at pickle protocol 5
    return out


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    # Python 3 writes bytes at pickle protocol <= 2 as _codecs.encode(text, "latin1"); allow only that
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def read_batch(fh: BinaryIO, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch (a pickled dict) without running anything from it.

    Keys may be ``str`` or ``bytes`` (``b"data"``, ``b"labels"``); pickles of any protocol.

    Returns
    -------
    x : uint8 ``[n, 32, 32, 3]`` (HWC view of the batch's CHW rows)
    y : uint8 ``[n]``
    """
    fix = "re-copy it from the official cifar-10-python.tar.gz"
    try:
        entry = _BatchUnpickler(fh, str(path)).load()
    except Exception as e:  # refused global, truncated, not a pickle, ...
        if isinstance(e, pickle.UnpicklingError) and str(e).startswith(f"{path}: refused"):
            raise pickle.UnpicklingError(str(e)) from None
        raise ValueError(f"cannot read CIFAR-10 batch {path}: {one_line(e)}; {fix}") from None
    if not isinstance(entry, dict):
        raise ValueError(f"CIFAR-10 batch {path} holds a {type(entry).__name__}, not a dict; {fix}")
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    data, labels = entry.get("data"), entry.get("labels")
    if data is None or labels is None:
        raise ValueError(f"CIFAR-10 batch {path} lacks the 'data' or 'labels' entry; {fix}")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"CIFAR-10 batch {path}: 'data' is {desc}, expected uint8 (n, 3072); {fix}")
    labels = np.asarray(labels) if isinstance(labels, (list, tuple, np.ndarray)) else np.asarray(None)
    if labels.dtype.kind not in "iu" or labels.shape != (len(data),):
        raise ValueError(f"CIFAR-10 batch {path}: 'labels' is not {len(data)} integers; {fix}")
    problem = label_problem(labels)
    if problem:
        raise ValueError(f"CIFAR-10 batch {path}: {problem}; {fix}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype(np.uint8)
