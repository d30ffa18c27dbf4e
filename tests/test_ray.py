"""The Ray executor (issue 7) on the smoke preset: a local Ray with 2 single-thread workers
writes the same curve CSVs, byte for byte, as the serial run; a worker killed midway is
retried and nothing finished is lost or redone; zoo training runs as tasks in two waves."""
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from semlib import runner, zoo
from semlib.study import Study, StudyConfig, compute_shard_task, specs

ray = pytest.importorskip("ray", reason="pip install '.[ray]'")
import faults  # noqa: E402  (tests/faults.py: fault injection stays out of the library)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # fails loudly instead of hanging CI
ROOT = Path(__file__).resolve().parent.parent
SMALL = dict(n_images=4, steps=2, period=1, eot=1, judge_n=4, search_steps=3, binary_steps=2, eps0=0.01, shard_size=2)
RAY = runner.Executor(kind="ray", num_cpus=2, cpus_per_task=1)


@pytest.fixture(scope="module")
def smoke_zoo(data_dir):
    spec = zoo.load_spec("smoke")
    zoo.train_zoo(spec, zoo.default_dir("smoke"), data_dir, progress=False)  # reused when CI already trained it
    yield spec
    if ray.is_initialized():
        ray.shutdown()


def _csvs(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.csv"))}


CURVES = specs("ACFH", ["pgd"], ["untargeted", "targeted"])


def test_executor_settings():
    assert runner.Executor.from_dict(None).kind == "local" and runner.Executor.from_dict({"kind": "serial"}).serial
    with pytest.raises(ValueError, match="kind must be one of local, serial, ray"):
        runner.Executor.from_dict({"kind": "dask"})
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['workers'\]"):
        runner.Executor.from_dict({"workers": 2})
    assert runner.run(pow, [(2, 3), (3, 2)], runner.Executor(kind="serial"), progress=False) == [8, 9]  # no Ray


def test_ray_curves_are_byte_identical_to_serial(smoke_zoo, data_dir, tmp_path):
    cfg = StudyConfig.from_dict({**SMALL, "shard_size": 1, "block": 2})
    serial = Study("smoke", cfg, threshold=0.0, data_dir=data_dir, cache_dir=tmp_path / "serial")
    a = serial.curves(CURVES, progress=False)
    on_ray = Study("smoke", cfg, threshold=0.0, data_dir=data_dir, cache_dir=tmp_path / "ray")
    tasks = on_ray.shard_tasks(CURVES)
    assert len(tasks) == 2  # two blocks of two 1-image shards, each one task for its curves together
    b = on_ray.curves(CURVES, progress=False, executor=RAY)
    assert _csvs(tmp_path / "serial") == _csvs(tmp_path / "ray")
    assert a.equals(b)
    assert on_ray.shard_tasks(CURVES) == []  # all finished: nothing left to run


def test_killed_worker_is_retried_and_finished_work_kept(smoke_zoo, data_dir, tmp_path):
    cfg = StudyConfig.from_dict({**SMALL, "shard_size": 1, "block": 1})  # four shards: one task each
    reference = Study("smoke", cfg, threshold=0.0, data_dir=data_dir, cache_dir=tmp_path / "ref")
    reference.curves(CURVES, progress=False)
    study = Study("smoke", cfg, threshold=0.0, data_dir=data_dir, cache_dir=tmp_path / "run")
    tasks = study.shard_tasks(CURVES)
    # a first, interrupted run finished some shards
    for t in tasks[:1]:
        compute_shard_task(*t)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").glob("*.csv")}
    assert len(before) == len(CURVES)
    pending = study.shard_tasks(CURVES)
    assert len(pending) == len(tasks) - 1
    marker = tmp_path / "killed"
    # the worker of the second pending task dies (SIGKILL) on its first attempt
    wrapped = [(str(marker) if i == 1 else None, compute_shard_task, *t) for i, t in enumerate(pending)]
    ray.cloudpickle.register_pickle_by_value(faults)  # the workers cannot import the tests' module
    keys = runner.run(faults.crash_once, wrapped, RAY, progress=False)
    assert marker.exists() and int(marker.read_text()) > 0, "a worker was killed"
    assert len(keys) == len(pending)
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").glob("*.csv")}
    assert {k: after[k] for k in before} == before, "finished shards were not redone"
    assert _csvs(tmp_path / "run") == _csvs(tmp_path / "ref")
    for manifest in (tmp_path / "run").glob("*.json"):
        assert json.loads(manifest.read_text())["sha256"]


def test_zoo_training_runs_as_ray_tasks(smoke_zoo, data_dir, tmp_path):
    names = ["vgg11_s0", "vgg11_s0.25", "resnet18_s0"]
    table = zoo.train_zoo(smoke_zoo, tmp_path, data_dir, only=names, progress=False, executor=RAY)
    assert sorted(table.name) == sorted(names)
    card = json.loads((tmp_path / "vgg11_s0.25.json").read_text())
    assert card["init_from"] == "vgg11_s0" and card["init_sha256"] == json.loads(
        (tmp_path / "vgg11_s0.json").read_text())["sha256"]
    assert card["threads"] == 1  # trained in a single-thread Ray worker
    # gpus_per_task None: a GPU per task where the cluster has one (the task trains on it), else the CPU
    assert (card["device"] != "cpu") == bool(ray.cluster_resources().get("GPU"))
    # retrain (make zoo EXECUTOR=ray): the tasks train again, the driver's loop does not
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.safetensors")}
    zoo.train_zoo(smoke_zoo, tmp_path, data_dir, only=names[:2], retrain=True, progress=False, executor=RAY)
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.safetensors")}
    assert [n for n in before if before[n] != after[n]] == ["vgg11_s0.safetensors", "vgg11_s0.25.safetensors"]
    assert all(json.loads((tmp_path / f"{n}.json").read_text())["threads"] == 1 for n in names[:2])


def test_an_unreachable_cluster_is_one_clear_line(monkeypatch):
    def refuse(**kwargs):
        raise ConnectionError("Failed to connect to Ray cluster at 127.0.0.1:9\nTraceback ...")

    if ray.is_initialized():
        ray.shutdown()
    monkeypatch.setattr(ray, "init", refuse)
    ex = runner.Executor.from_dict({"kind": "ray", "address": "127.0.0.1:9"})
    with pytest.raises(ConnectionError) as info:
        runner.run(pow, [(2, 3)], ex, progress=False)
    msg = str(info.value)
    assert msg.startswith("EXECUTOR address '127.0.0.1:9': cannot join the Ray cluster (Failed to connect")
    assert "RAY_AUTH_MODE=token" in msg and "\n" not in msg


def _stop_cluster(temp: str) -> None:
    """End the processes of the cluster whose temp dir is ``temp`` (and only those)."""
    import psutil

    mine = [p for p in psutil.process_iter(["cmdline"]) if temp in " ".join(p.info["cmdline"] or [])]
    for p in list(mine):  # and their children: Ray's agents rename themselves (ray::DashboardAgent)
        with contextlib.suppress(psutil.Error):
            mine += [c for c in p.children(recursive=True) if c not in mine]
    for p in mine:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(mine, timeout=30)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    shutil.rmtree(temp, ignore_errors=True)


def test_an_existing_cluster_joined_by_address(smoke_zoo, data_dir, tmp_path):
    """EXECUTOR {kind: ray, address: ...}: a cluster started apart (``ray start --head``, as on a
    head node) is joined by a driver in another process, not replaced by a local Ray, and its
    tasks write the serial run's CSVs."""
    ray_cli = str(Path(sys.executable).parent / "ray")
    if ray.is_initialized():
        ray.shutdown()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Ray >= 2.59 starts local clusters with token authentication; the cluster and the driver
    # share this test's own token (RAY_AUTH_TOKEN outranks ~/.ray/auth_token)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    # its own temp dir (short: Ray's socket paths are length-limited), so stopping it afterwards
    # touches this cluster only -- `ray stop` would end every Ray on the machine, a user's too
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                    "--disable-usage-stats", f"--temp-dir={temp}"], check=True, env=env, capture_output=True,
                   timeout=180)
    driver = f"""
import json, ray
from semlib import runner
from semlib.study import Study, StudyConfig, specs
ex = runner.Executor.from_dict({{"kind": "ray", "address": "127.0.0.1:{port}", "cpus_per_task": 1}})
curves = specs("AF", ["pgd"], ["untargeted"])
Study("smoke", StudyConfig.from_dict({SMALL!r}), threshold=0.0, data_dir={str(data_dir)!r},
      cache_dir={str(tmp_path / "cluster")!r}).curves(curves, progress=False, executor=ex)
print(json.dumps({{"gcs": ray.get_runtime_context().gcs_address, "nodes": len(ray.nodes())}}))
"""
    try:
        out = subprocess.run([sys.executable, "-c", driver], env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        joined = json.loads(out.stdout.strip().splitlines()[-1])
        assert joined["gcs"].endswith(f":{port}") and joined["nodes"] == 1  # the cluster given, not a new one
    finally:
        _stop_cluster(temp)
    Study("smoke", StudyConfig.from_dict(SMALL), threshold=0.0, data_dir=data_dir, cache_dir=tmp_path / "serial"
          ).curves(specs("AF", ["pgd"], ["untargeted"]), progress=False)
    assert len(_csvs(tmp_path / "serial")) == 4  # 2 curves x 2 shards
    assert _csvs(tmp_path / "serial") == _csvs(tmp_path / "cluster")
