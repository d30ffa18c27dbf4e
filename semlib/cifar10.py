"""CIFAR-10's facts, shared by the loader (:mod:`semlib.data`) and the downloader
(:mod:`semlib.fetch`): file names, split sizes, the 111 lossy-fallback indices, the canonical
hashes, the errors and the messages. A leaf module (numpy only)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

ENV_VAR = "SEMLIB_DATA"
VERIFY_ENV = "SEMLIB_DATA_VERIFY"
DEFAULT_DIR = Path("data")
NUM_CLASSES = 10
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_SPLIT_SIZES = {"train": 50_000, "test": 10_000}
_SHARDS = {
    "train": [f"cifar10_train_batch{i}.npz" for i in range(1, 6)],
    "test": ["cifar10_test.npz"],
}
_PY_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_SHARD_KEYS = ("x", "y", "jpeg_fallback", "start")

#: Canonical indices of the 111 images the shared copy holds only as lossy JPEGs (SOURCE.md).
JPEG_FALLBACK = {
    "train": (4298, 5949, 7066, 7237, 7248, 7630, 8006, 8831, 8968, 9415, 10336, 10408, 10572, 11027,
              12762, 12834, 13546, 21493, 25728, 26098, 26927, 27621, 28435, 28670, 28728, 29694, 29747,
              30329, 31066, 31367, 31462, 31625, 31663, 32777, 33446, 33641, 33661, 34067, 34276, 34387,
              34471, 34825, 35160, 35646, 36733, 37329, 37474, 37567, 38089, 38384, 38925, 39069, 39358,
              39385, 39613, 39840, 39888, 39971, 40805, 41761, 41779, 42004, 42389, 42611, 43357, 43883,
              44420, 44882, 45168, 45240, 46175, 46435, 46538, 46624, 47393, 47597, 48081, 48124, 48333,
              48821, 48836, 49321, 49429, 49631, 49830, 49857),
    "test": (260, 722, 1259, 1369, 1422, 1556, 2245, 2737, 2935, 3630, 3695, 3718, 4085, 4496, 5791,
             5896, 6286, 7580, 7707, 7724, 7832, 8117, 8541, 8551, 9254),
}
#: sha256 of the labels (uint8) and of the images (uint8 HWC, C order) without JPEG_FALLBACK.
CANONICAL_SHA256 = {
    "train": {"labels": "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253",
              "images": "61e270ab356559630e494396b12519697d65a971f131e6a36e22a9289461470e"},
    "test": {"labels": "cec8a24a1e92aa2ecaa0bbd3dbfa86bf6cd8759fbd209a832824c8cf0afca9d5",
             "images": "9f2f36ee11406bac5cb1937a1f02749e63659c9840cea6517bc01521e2638bd5"},
}

Split = Literal["train", "test"]


class DataNotFoundError(FileNotFoundError):
    """No CIFAR-10 copy in any of the places looked, and none could be downloaded."""


class DataIntegrityError(ValueError):
    """A CIFAR-10 copy (or download) differs from the canonical one."""


def fallback_mask(split: Split) -> np.ndarray:
    mask = np.zeros(_SPLIT_SIZES[split], dtype=bool)
    mask[list(JPEG_FALLBACK[split])] = True
    return mask


def label_problem(y: np.ndarray) -> str | None:
    bad = np.flatnonzero((y < 0) | (y >= NUM_CLASSES))
    return f"label {y[bad[0]]} of image {bad[0]} is outside 0..{NUM_CLASSES - 1}" if len(bad) else None


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def not_found_message(dirs: list[Path], failure: str | None = None) -> str:
    looked = "; ".join(f"{d.resolve()}" for d in dirs)
    why, retry = (f"; {failure}", "retry on a machine that is online") if failure else \
        ("", "load with download=True on a machine that is online")
    return (f"CIFAR-10 not found. Looked for the six .npz shards or a cifar-10-batches-py folder in: {looked}{why}. "
            f"Fix: set {ENV_VAR}=/path/to/cifar10 (e.g. ../shared/data/cifar10), pass data_dir=..., or {retry}.")
