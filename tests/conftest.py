import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real CIFAR-10 shards: $SEMLIB_DATA, else ../shared/data/cifar10 beside the repo."""
    cand = [os.environ.get("SEMLIB_DATA"), ROOT.parent / "shared" / "data" / "cifar10"]
    for c in cand:
        if c and (Path(c) / "cifar10_test.npz").is_file():
            return Path(c).resolve()
    pytest.fail("CIFAR-10 shards not found: set SEMLIB_DATA to the folder with the six .npz shards")


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
    yield
