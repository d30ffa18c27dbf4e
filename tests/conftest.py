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


@pytest.fixture(autouse=True, scope="session")
def _offline_fetch():
    """No test downloads CIFAR-10 from the internet: the fetcher is pointed at a closed loopback
    port (tests of the fetch path serve their own archive on 127.0.0.1)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: connections are refused
    old = os.environ.get("SEMLIB_CIFAR10_URL")
    os.environ["SEMLIB_CIFAR10_URL"] = f"http://127.0.0.1:{port}/cifar-10-python.tar.gz"
    yield
    if old is None:
        os.environ.pop("SEMLIB_CIFAR10_URL", None)
    else:
        os.environ["SEMLIB_CIFAR10_URL"] = old
