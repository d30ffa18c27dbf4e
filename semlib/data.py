"""CIFAR-10 as tensors: uint8 storage, float pixels in [0, 1] on demand.

Where the data is looked for, in order: the ``data_dir`` argument (a params key ``DATA_DIR``
in the notebooks), the environment variable ``SEMLIB_DATA``, then ``./data``. A directory may
hold either

* the six ``.npz`` shards ``cifar10_{train_batch1..5,test}.npz`` (keys ``x`` uint8 [n,32,32,3],
  ``y`` uint8 [n], ``jpeg_fallback`` bool [n], ``start`` int64), or
* the official ``cifar-10-batches-py`` folder (directly or one level down), read with an
  unpickler that only rebuilds numpy arrays.

When none is found, :func:`load_split` and :func:`find_data_dir` download the official
``cifar-10-python.tar.gz`` into the first of those directories, check its sha256 and convert it
once to the shards (:mod:`semlib.fetch`); ``download=False`` turns this off.

Every load is checked against the canonical arrays (SOURCE.md beside the shared shards): the
labels' sha256, the images' sha256 leaving out the 111 images the shared copy holds only as
lossy JPEGs (:data:`JPEG_FALLBACK`), so the shared and the official copy agree, and the
``jpeg_fallback`` mask. A mismatch raises :class:`DataIntegrityError`.

Environment: ``SEMLIB_DATA`` (a data directory), ``SEMLIB_CIFAR10_URL``/``_SHA256`` (a mirror of
the archive and its sha256), ``SEMLIB_DATA_VERIFY=0`` (a non-canonical copy: warning, not error).
Evaluation subsets: the first ``n`` test images in canonical order, fallbacks skipped by default.
"""
from __future__ import annotations

import functools
import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .cifar10 import (_PY_BATCHES, _SHARD_KEYS, _SHARDS, _SPLIT_SIZES, CANONICAL_SHA256, CLASSES,  # noqa: F401
                      DEFAULT_DIR, ENV_VAR, JPEG_FALLBACK, NUM_CLASSES, VERIFY_ENV, DataIntegrityError,
                      DataNotFoundError, Split, fallback_mask, label_problem, not_found_message, one_line)
from .fetch import fetch, read_batch


@dataclass
class Cifar10Split:
    """One CIFAR-10 split held as uint8.

    Attributes
    ----------
    x : torch.Tensor
        uint8 ``[N, 3, 32, 32]`` (CHW, RGB, 0..255).
    y : torch.Tensor
        int64 ``[N]`` class labels.
    jpeg_fallback : torch.Tensor
        bool ``[N]``; True for the 111 images of :data:`JPEG_FALLBACK`, which the shared copy
        holds only as lossy JPEGs; set for the same indices in any copy (the official one too),
        so evaluation subsets are the same images whatever the copy.
    source : str
        Where the arrays were read from.
    """

    x: torch.Tensor
    y: torch.Tensor
    jpeg_fallback: torch.Tensor
    source: str

    def __len__(self) -> int:
        return len(self.y)

    def images(self, index: torch.Tensor | slice | None = None) -> torch.Tensor:
        """Float pixels in [0, 1], ``[n, 3, 32, 32]``, for the given indices (all by default)."""
        x = self.x if index is None else self.x[index]
        return x.float().div_(255.0)

    def sha256(self) -> str:
        """Hash of the raw uint8 arrays (HWC, C order), comparable with the SOURCE.md hashes."""
        return hashlib.sha256(self.x.permute(0, 2, 3, 1).contiguous().numpy().tobytes()).hexdigest()


def candidate_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The directories looked in, in order (argument, ``$SEMLIB_DATA``, ``./data``)."""
    dirs = []
    if data_dir:
        dirs.append(Path(data_dir))
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]))
    dirs.append(DEFAULT_DIR)
    return dirs


def find_data_dir(data_dir: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The first candidate directory that holds CIFAR-10 in a known layout.

    If there is none and ``download`` is true, the official archive is downloaded into the
    first candidate directory and converted to the shards (see :func:`semlib.fetch.fetch`).
    """
    dirs = candidate_dirs(data_dir)
    for d in dirs:
        if _has_shards(d) or _py_folder(d) is not None:
            return d
    if not download:
        raise DataNotFoundError(not_found_message(dirs))
    return fetch(dirs[0], looked=dirs)


def load_split(split: Split = "train", data_dir: str | os.PathLike | None = None,
               download: bool = True) -> Cifar10Split:
    """Load one split of CIFAR-10, checking its format, counts and canonical hashes.

    Parameters
    ----------
    split : {"train", "test"}
    data_dir : path, optional
        Looked in before ``$SEMLIB_DATA`` and ``./data``.
    download : bool
        If no copy is found, download the official archive into the first candidate directory
        and convert it to the shards (needs a network connection); False raises instead.

    Raises
    ------
    DataNotFoundError
        No copy found (and, with ``download``, the download failed).
    DataIntegrityError
        The copy differs from the canonical one (unless ``SEMLIB_DATA_VERIFY=0``).
    """
    if split not in _SPLIT_SIZES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    d = find_data_dir(data_dir, download=download)
    verify = os.environ.get(VERIFY_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
    return _load_cached(str(d.resolve()), split, verify)


@functools.lru_cache(maxsize=4)
def _load_cached(d: str, split: Split, verify: bool) -> Cifar10Split:
    # decompressing the shards takes seconds; notebooks and the zoo load the same split often
    path = Path(d)
    if _has_shards(path):
        x, y, fb, files = _load_shards(path, split)
        source = path
    else:
        source = _py_folder(path)
        x, y, fb, files = _load_py_folder(source, split)
    _check_counts(y, split, files)
    _verify(x, y, fb, split, files, verify)
    return Cifar10Split(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y).long(),
                        torch.from_numpy(fb), source=str(source))


def eval_subset(n: int, data_dir: str | os.PathLike | None = None, *, include_fallback: bool = False,
                split: Split = "test") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``n`` images of a split in canonical order, skipping ``jpeg_fallback`` ones.

    Returns
    -------
    x : float ``[n, 3, 32, 32]`` in [0, 1]
    y : int64 ``[n]``
    index : int64 ``[n]``, canonical indices of the chosen images
    """
    data = load_split(split, data_dir)
    keep = torch.ones(len(data), dtype=torch.bool) if include_fallback else ~data.jpeg_fallback
    index = torch.nonzero(keep).flatten()
    if not 1 <= n <= len(index):
        raise ValueError(f"n must be between 1 and {len(index)} for the {split} split, got {n}")
    index = index[:n]
    return data.images(index), data.y[index], index


def _has_shards(d: Path) -> bool:
    return all((d / f).is_file() for f in _SHARDS["train"] + _SHARDS["test"])


def _py_folder(d: Path) -> Path | None:
    for cand in (d, d / "cifar-10-batches-py"):
        if all((cand / f).is_file() for f in _PY_BATCHES["train"] + _PY_BATCHES["test"]):
            return cand
    return None


def _split_files(d: Path, names: list[str]) -> str:
    """A split's files as named in messages."""
    return str(d / names[0]) if len(names) == 1 else f"{d / names[0]} .. {names[-1]}"


def _load_shards(d: Path, split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    xs, ys, fb = [], [], []
    expected_start = 0
    for name in _SHARDS[split]:
        path = d / name
        x, y, f, start = _read_shard(path)
        if start != expected_start:
            raise ValueError(f"shard {path} starts at image {start}, expected {expected_start}: shards out of order")
        expected_start += len(y)
        xs.append(x), ys.append(y), fb.append(f)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(fb), _split_files(d, _SHARDS[split])


def _read_shard(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    fix = "re-copy the file from the source (see SOURCE.md beside the shards)"
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k in _SHARD_KEYS}
    except Exception as e:  # truncated zip, object array, not an npz, ...
        raise ValueError(f"cannot read CIFAR-10 shard {path}: {one_line(e)}; {fix}") from None
    problem = _shard_problem(arrays)
    if problem:
        raise ValueError(f"CIFAR-10 shard {path} is malformed: {problem}; {fix}")
    return arrays["x"], arrays["y"], arrays["jpeg_fallback"], int(arrays["start"])


def _shard_problem(a: dict[str, np.ndarray]) -> str | None:
    missing = [k for k in _SHARD_KEYS if k not in a]
    if missing:
        return f"missing key(s) {', '.join(missing)}"
    x, y, f, start = (a[k] for k in _SHARD_KEYS)
    n = len(y) if y.ndim == 1 else -1
    want = {"x": (x, np.uint8, (n, 32, 32, 3)), "y": (y, np.uint8, (n,)), "jpeg_fallback": (f, np.bool_, (n,)),
            "start": (start, np.int64, ())}
    for key, (arr, dtype, shape) in want.items():
        if arr.dtype != dtype and not (key == "start" and arr.dtype.kind in "iu"):
            return f"{key} is {arr.dtype}, expected {np.dtype(dtype)}"
        if arr.shape != shape:
            return f"{key} has shape {arr.shape}, expected {shape} (n = number of labels)"
    return label_problem(y)


def _load_py_folder(d: Path, split: Split) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:

    xs, ys = [], []
    for name in _PY_BATCHES[split]:
        with open(d / name, "rb") as fh:
            x, y = read_batch(fh, d / name)
        xs.append(x), ys.append(y)
    return (np.concatenate(xs), np.concatenate(ys), fallback_mask(split),
            _split_files(d, _PY_BATCHES[split]))


def _check_counts(y: np.ndarray, split: Split, files: str) -> None:
    n = _SPLIT_SIZES[split]
    if len(y) != n:
        raise ValueError(f"CIFAR-10 {split} split in {files} has {len(y)} images, expected {n}")
    counts = np.bincount(y, minlength=NUM_CLASSES)
    if not bool((counts == n // NUM_CLASSES).all()):
        raise ValueError(f"CIFAR-10 {split} class counts in {files} are {counts.tolist()}, "
                         f"expected {n // NUM_CLASSES} each")


def _images_sha256(x: np.ndarray, skip: tuple[int, ...]) -> str:
    """sha256 of uint8 HWC images in C order, leaving out the images at ``skip`` (sorted)."""
    h, prev = hashlib.sha256(), 0
    for i in (*skip, len(x)):
        h.update(np.ascontiguousarray(x[prev:i]))
        prev = i + 1
    return h.hexdigest()


def _verify(x: np.ndarray, y: np.ndarray, fb: np.ndarray, split: Split, files: str, verify: bool) -> None:
    want = CANONICAL_SHA256[split]
    bad = []
    if hashlib.sha256(np.ascontiguousarray(y, dtype=np.uint8)).hexdigest() != want["labels"]:
        bad.append(("labels", "shuffled or edited labels, or a different copy"))
    if _images_sha256(x, JPEG_FALLBACK[split]) != want["images"]:
        bad.append(("images", "flipped or edited images, or a different copy"))
    diff = np.flatnonzero(fb != fallback_mask(split))
    if len(diff):
        bad.append(("jpeg_fallback mask", f"an edited mask: image {diff[0]} is flagged differently from the "
                                          f"{len(JPEG_FALLBACK[split])} known lossy images"))
    if not bad:
        return
    msg = (f"CIFAR-10 {split} {' and '.join(b[0] for b in bad)} in {files}: not the canonical copy "
           f"(likely {'; '.join(b[1] for b in bad)})")
    if verify:
        raise DataIntegrityError(f"{msg}; re-copy the data (see SOURCE.md beside the shared shards), or set "
                                 f"{VERIFY_ENV}=0 to use this copy knowingly")
    warnings.warn(f"{msg}; using it anyway because {VERIFY_ENV}=0", stacklevel=4)


def summary(data_dir: str | os.PathLike | None = None) -> tuple[pd.DataFrame, dict]:
    """Dataset facts for reports: per-class counts of both splits, and a dict with sizes,
    fallback counts, per-channel mean/std (train, [0, 1] scale) and array hashes."""
    rows, facts = [], {}
    for split in ("train", "test"):
        d = load_split(split, data_dir)
        counts = torch.bincount(d.y, minlength=NUM_CLASSES)
        fb = torch.bincount(d.y[d.jpeg_fallback], minlength=NUM_CLASSES)
        rows += [{"split": split, "class": CLASSES[c], "count": int(counts[c]), "jpeg_fallback": int(fb[c])}
                 for c in range(NUM_CLASSES)]
        x = d.x.double().div_(255.0)
        facts[split] = {
            "images": len(d), "jpeg_fallback": int(d.jpeg_fallback.sum()), "source": d.source,
            "channel_mean": [round(v, 4) for v in x.mean((0, 2, 3)).tolist()],
            "channel_std": [round(v, 4) for v in x.std((0, 2, 3)).tolist()],
            "sha256_x": d.sha256(),
        }
    return pd.DataFrame(rows), facts


def array_hashes(data_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """sha256 of the train and test image arrays (for provenance)."""
    return {split: load_split(split, data_dir).sha256() for split in ("train", "test")}
