"""CIFAR-10 as tensors: uint8 storage, float pixels in [0, 1] on demand.

Where the data is looked for, in order: the ``data_dir`` argument (a params key ``DATA_DIR``
in the notebooks), the environment variable ``SEMLIB_DATA``, then ``./data``. A directory may
hold either

* the six ``.npz`` shards ``cifar10_{train_batch1..5,test}.npz`` (keys ``x`` uint8 [n,32,32,3],
  ``y`` uint8 [n], ``jpeg_fallback`` bool [n], ``start`` int64), or
* torchvision's ``cifar-10-batches-py`` folder (directly or one level down); with
  ``download=True`` torchvision fetches it there when the machine is online.

Evaluation subsets are the first ``n`` test images in canonical order, skipping the images
whose ``jpeg_fallback`` flag is set (lossy copies) unless asked to keep them.
"""
from __future__ import annotations

import functools
import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch

ENV_VAR = "SEMLIB_DATA"
DEFAULT_DIR = Path("data")
NUM_CLASSES = 10
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_SPLIT_SIZES = {"train": 50_000, "test": 10_000}
_SHARDS = {
    "train": [f"cifar10_train_batch{i}.npz" for i in range(1, 6)],
    "test": ["cifar10_test.npz"],
}
_PY_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}

Split = Literal["train", "test"]


class DataNotFoundError(FileNotFoundError):
    """No CIFAR-10 copy in any of the places looked."""


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
        bool ``[N]``; True for images only available as lossy JPEG copies (all False for
        torchvision's folder, whose pixels are the originals).
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


def find_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The first candidate directory that holds CIFAR-10 in a known layout."""
    for d in candidate_dirs(data_dir):
        if _has_shards(d) or _py_folder(d) is not None:
            return d
    raise DataNotFoundError(_not_found_message(candidate_dirs(data_dir)))


def load_split(split: Split = "train", data_dir: str | os.PathLike | None = None,
               download: bool = False) -> Cifar10Split:
    """Load one split of CIFAR-10, checking shapes and counts.

    Parameters
    ----------
    split : {"train", "test"}
    data_dir : path, optional
        Looked in before ``$SEMLIB_DATA`` and ``./data``.
    download : bool
        If no copy is found, let torchvision download ``cifar-10-batches-py`` into the first
        candidate directory (needs torchvision and a network connection).
    """
    if split not in _SPLIT_SIZES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    try:
        d = find_data_dir(data_dir)
    except DataNotFoundError:
        if not download:
            raise
        d = _download(candidate_dirs(data_dir)[0])
    return _load_cached(str(d.resolve()), split)


@functools.lru_cache(maxsize=4)
def _load_cached(d: str, split: Split) -> Cifar10Split:
    # decompressing the shards takes seconds; notebooks and the zoo load the same split often
    path = Path(d)
    out = _load_shards(path, split) if _has_shards(path) else _load_py_folder(_py_folder(path), split)
    _check(out, split)
    return out


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


def _load_shards(d: Path, split: Split) -> Cifar10Split:
    xs, ys, fb = [], [], []
    expected_start = 0
    for name in _SHARDS[split]:
        path = d / name
        try:
            with np.load(path, allow_pickle=False) as z:
                x, y, f, start = z["x"], z["y"], z["jpeg_fallback"], int(z["start"])
        except Exception as e:  # truncated zip, missing key, ...
            raise ValueError(f"cannot read CIFAR-10 shard {path}: {e}; re-copy the file from the source "
                             f"(see SOURCE.md beside the shards)") from None
        if start != expected_start:
            raise ValueError(f"shard {path} starts at image {start}, expected {expected_start}: shards out of order")
        expected_start += len(y)
        xs.append(x), ys.append(y), fb.append(f)
    x = torch.from_numpy(np.concatenate(xs)).permute(0, 3, 1, 2).contiguous()
    return Cifar10Split(x, torch.from_numpy(np.concatenate(ys)).long(), torch.from_numpy(np.concatenate(fb)),
                        source=str(d))


def _load_py_folder(d: Path, split: Split) -> Cifar10Split:
    xs, ys = [], []
    for name in _PY_BATCHES[split]:
        # the official CIFAR-10 python batches are pickled dicts of numpy arrays; this is data
        # from the dataset's own distribution, not a checkpoint
        with open(d / name, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(entry.get("labels", entry.get("fine_labels"))))
    x = torch.from_numpy(np.concatenate(xs))
    y = torch.from_numpy(np.concatenate(ys)).long()
    return Cifar10Split(x, y, torch.zeros(len(y), dtype=torch.bool), source=str(d))


def _check(data: Cifar10Split, split: Split) -> None:
    n = _SPLIT_SIZES[split]
    if tuple(data.x.shape) != (n, 3, 32, 32) or data.x.dtype != torch.uint8:
        raise ValueError(f"CIFAR-10 {split} images in {data.source} have shape {tuple(data.x.shape)} "
                         f"{data.x.dtype}, expected ({n}, 3, 32, 32) uint8")
    if data.y.shape != (n,) or data.jpeg_fallback.shape != (n,):
        raise ValueError(f"CIFAR-10 {split} labels in {data.source} do not match the {n} images")
    counts = torch.bincount(data.y, minlength=NUM_CLASSES)
    if len(counts) != NUM_CLASSES or not bool((counts == n // NUM_CLASSES).all()):
        raise ValueError(f"CIFAR-10 {split} class counts in {data.source} are {counts.tolist()}, "
                         f"expected {n // NUM_CLASSES} each")


def _download(root: Path) -> Path:
    try:
        from torchvision.datasets import CIFAR10
    except ImportError as e:
        raise DataNotFoundError(
            f"no CIFAR-10 found and torchvision is not importable ({e}); install it "
            f"(pip install 'semlib[download]') or point {ENV_VAR} at the data") from None
    root.mkdir(parents=True, exist_ok=True)
    CIFAR10(str(root), train=True, download=True)
    CIFAR10(str(root), train=False, download=True)
    return root


def _not_found_message(dirs: list[Path]) -> str:
    looked = "; ".join(f"{d.resolve()}" for d in dirs)
    return (f"CIFAR-10 not found. Looked for the six .npz shards or a cifar-10-batches-py folder in: "
            f"{looked}. Fix: set {ENV_VAR}=/path/to/cifar10 (e.g. ../shared/data/cifar10), pass "
            f"data_dir=..., or load with download=True on a machine that is online.")


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
