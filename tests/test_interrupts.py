"""kill -9 in the middle of a zoo training and of a curve computation; the next run reuses what
finished, redoes what did not, and takes nothing half-written for complete."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import yaml

from semlib.cache import cached_shards
from semlib.zoo import ZooSpec, train_zoo

ROOT = Path(__file__).resolve().parent.parent


def _start(script: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    start = time.time()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker ended early: {proc.stderr.read().decode()[-2000:]}")
        if time.time() - start > timeout:
            proc.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.05)


def test_killed_zoo_training_resumes(data_dir, tmp_path):
    spec = {
        "name": "kill", "sigmas": [0.0, 0.25],
        "models": [{"arch": "vgg11", "width": 0.0625, "stem_stride": 2}],
        "train": {"epochs": 1, "n_train": 256, "batch_size": 64, "bf16": False},
        "finetune": {"epochs": 400},  # long enough to be killed in the middle
        "evaluate": {"n_test": 20, "aca_images": 4, "n0": 2, "n": 8, "alpha": 0.1},
    }
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    zoo_dir = tmp_path / "zoo"
    proc = _start(f"""
        import torch; torch.set_num_threads(1)
        from semlib.zoo import ZooSpec, train_zoo
        train_zoo(ZooSpec.from_yaml({str(spec_file)!r}), {str(zoo_dir)!r}, {str(data_dir)!r}, progress=False)
    """)
    _wait_for(zoo_dir / "vgg11_s0.json", proc)
    time.sleep(1.0)  # well inside the 400-epoch fine-tuning
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (zoo_dir / "vgg11_s0.25.json").exists()  # nothing unfinished looks finished
    parent_mtime = (zoo_dir / "vgg11_s0.safetensors").stat().st_mtime_ns
    quick = ZooSpec.from_dict({**spec, "finetune": {"epochs": 1}})
    df = train_zoo(quick, zoo_dir, data_dir, progress=False)
    assert (zoo_dir / "vgg11_s0.safetensors").stat().st_mtime_ns == parent_mtime  # reused
    assert df.name.tolist() == ["vgg11_s0", "vgg11_s0.25"]  # the killed one was redone
    card = json.loads((zoo_dir / "vgg11_s0.25.json").read_text())
    assert card["init_from"] == "vgg11_s0" and card["train"]["epochs"] == 1


def test_killed_curve_computation_resumes(tmp_path):
    cache = tmp_path / "cache"
    proc = _start(f"""
        import time
        import pandas as pd
        from semlib.cache import cached_shards

        def compute(sl):
            time.sleep(0.3 if sl.start < 4 else 60)  # the third shard never finishes
            return pd.DataFrame({{"example": range(sl.start, sl.stop), "distortion": 0.5}})

        cached_shards({{"run": "kill"}}, 10, compute, {str(cache)!r}, shard_size=2)
    """)
    deadline = time.time() + 60
    while len(list(cache.glob("*.csv"))) < 2 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(list(cache.glob("*.csv"))) == 2
    computed = []

    def compute(sl):
        computed.append(sl.start)
        return pd.DataFrame({"example": range(sl.start, sl.stop), "distortion": 0.5})

    df = cached_shards({"run": "kill"}, 10, compute, cache, shard_size=2)
    assert computed == [4, 6, 8]  # the two finished shards were reused
    assert df.example.tolist() == list(range(10))
