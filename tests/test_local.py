"""The default executor (issue 17): a pool of single-thread worker processes on this machine,
nothing to set up. On the smoke preset it writes the same curve CSVs, byte for byte, as the
serial run; a worker killed midway is replaced and its task rerun, nothing finished is redone;
a task's own error reaches the caller; zoo training runs as local tasks in two waves."""
import json
from pathlib import Path

import pandas as pd
import pytest

import faults  # tests/faults.py: fault injection stays out of the library
from semlib import runner, zoo
from semlib.study import Study, StudyConfig, compute_shard_task, specs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # fails loudly instead of hanging CI
SMALL = dict(n_images=4, steps=2, period=1, eot=1, judge_n=4, search_steps=3, binary_steps=2, eps0=0.01,
             shard_size=2)
LOCAL = runner.Executor(kind="local", num_cpus=2, cpus_per_task=1)
CURVES = specs("ACFH", ["pgd"], ["untargeted", "targeted"])


@pytest.fixture(scope="module")
def smoke_zoo(data_dir):
    spec = zoo.load_spec("smoke")
    zoo.train_zoo(spec, zoo.default_dir("smoke"), data_dir, progress=False)  # reused when CI already trained it
    return spec


def _csvs(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.glob("*.csv"))}


def test_local_curves_are_byte_identical_to_serial(smoke_zoo, data_dir, tmp_path):
    cfg = StudyConfig.from_dict({**SMALL, "shard_size": 1, "block": 2})
    a = Study("smoke", cfg, threshold=0.0, data_dir=data_dir, cache_dir=tmp_path / "serial").curves(CURVES,
                                                                                                   progress=False)
    pooled = Study("smoke", cfg, threshold=0.0, data_dir=data_dir, cache_dir=tmp_path / "local")
    assert len(pooled.shard_tasks(CURVES)) == 2  # one task per block of two shards, its curves together
    b = pooled.curves(CURVES, progress=False, executor=LOCAL)
    assert _csvs(tmp_path / "serial") == _csvs(tmp_path / "local") and a.equals(b)
    assert pooled.shard_tasks(CURVES) == []  # all finished in the workers: nothing left to run


def test_custom_sem_curves_run_on_the_pool_byte_identical_to_serial(smoke_zoo, data_dir, tmp_path):
    """A SEM registered with add_variant (notebook 08's grid) is rebuilt in the worker from the
    definition its task carries: the same cached CSVs and rows as computing it here."""
    cfg = StudyConfig.from_dict({**SMALL, "block": 2})  # a block per shard: two tasks
    studies = {d: Study("smoke", cfg, threshold=0.0, data_dir=data_dir, cache_dir=tmp_path / d) for d in ("serial", "local")}
    names = {d: s.add_variant("two", s.collection()[:2], (1, 2)) for d, s in studies.items()}
    curves = specs("A", ["pgd"], ["untargeted"], variant=names["serial"])
    assert names["serial"] == names["local"] and len(studies["local"].shard_tasks(curves)) == 2
    assert studies["local"].shard_tasks(curves)[0][-1] == [["two", sorted(studies["local"].collection()[:2]), [1, 2]]]
    a = studies["serial"].curves(curves, progress=False)
    b = studies["local"].curves(curves, progress=False, executor=LOCAL)
    assert _csvs(tmp_path / "serial") == _csvs(tmp_path / "local") and a.equals(b) and len(a) == 4
    assert studies["local"].shard_tasks(curves) == []  # the workers stored every shard


def test_killed_worker_is_replaced_and_finished_work_kept(smoke_zoo, data_dir, tmp_path):
    cfg = StudyConfig.from_dict({**SMALL, "shard_size": 1, "block": 1})  # four shards: one task each
    Study("smoke", cfg, threshold=0.0, data_dir=data_dir, cache_dir=tmp_path / "ref").curves(CURVES, progress=False)
    study = Study("smoke", cfg, threshold=0.0, data_dir=data_dir, cache_dir=tmp_path / "run")
    tasks = study.shard_tasks(CURVES)
    for t in tasks[:1]:  # a first, interrupted run finished one shard (all its curves)
        compute_shard_task(*t)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").glob("*.csv")}
    pending = study.shard_tasks(CURVES)
    marker = tmp_path / "killed"
    wrapped = [(str(marker) if i == 1 else None, compute_shard_task, *t) for i, t in enumerate(pending)]
    keys = runner.run(faults.crash_once, wrapped, LOCAL, progress=False)  # the 2nd task's worker: SIGKILL once
    assert marker.exists() and int(marker.read_text()) > 0, "a worker was killed"
    assert len(keys) == len(pending)
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").glob("*.csv")}
    assert {k: after[k] for k in before} == before, "finished shards were not redone"
    assert _csvs(tmp_path / "run") == _csvs(tmp_path / "ref")


def test_a_worker_that_keeps_dying_is_one_clear_error_and_task_errors_pass_through(tmp_path):
    always = runner.Executor(kind="local", num_cpus=1, max_retries=1)
    marker = tmp_path / "gone"  # the worker dies on every try
    with pytest.raises(RuntimeError, match="a worker process died 2 times .* rerun to resume"):
        runner.run(faults.crash_always, [(str(marker), pow, 2, 3)], always, progress=False)
    with pytest.raises(ZeroDivisionError):
        runner.run(divmod, [(1, 0)], always, progress=False)
    assert runner.run(pow, [(2, 3), (3, 2), (2, 10)], LOCAL, progress=False) == [8, 9, 1024]


def test_zoo_training_runs_as_local_tasks(smoke_zoo, data_dir, tmp_path):
    names = ["vgg11_s0", "vgg11_s0.25"]
    table = zoo.train_zoo(smoke_zoo, tmp_path, data_dir, only=names, progress=False, executor=LOCAL)
    assert sorted(table.name) == sorted(names)
    card = json.loads((tmp_path / "vgg11_s0.25.json").read_text())
    assert card["init_from"] == "vgg11_s0" and card["threads"] == 1  # the second wave, in a 1-thread worker


def test_workers_end_when_the_process_that_started_them_dies(tmp_path):
    """A notebook or pipeline killed mid-run leaves no worker computing for no one: each worker
    watches the process that started it and exits when it is gone."""
    import os
    import signal
    import subprocess
    import sys
    import time

    marker = tmp_path / "worker.pid"
    script = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import faults\n"
              "from semlib import runner\n"
              f"runner.run(faults.report_pid_and_wait, [({str(marker)!r}, 600)], "
              "runner.Executor(kind='local', num_cpus=1), progress=False)\n")
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 120
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        worker = int(marker.read_text())
        os.kill(worker, 0)  # running
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    def alive() -> bool:  # a zombie (exited, not yet reaped where PID 1 does not reap) counts as gone
        try:
            return Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, ProcessLookupError):
            return False

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not alive():
            return
        time.sleep(0.2)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the worker outlived the process that started it by 30 s")


def test_robust_tasks_are_one_per_job_and_block_the_costliest_first(smoke_zoo, data_dir, tmp_path, monkeypatch):
    """Each task holds a job's own defenses together (as the serial run computes them, so the rows
    are the same), one per block of shards; a job given twice runs once; others stay with the caller."""
    from semlib import robust

    study = Study("smoke", StudyConfig.from_dict({**SMALL, "n_images": 8, "shard_size": 2, "block": 4}), threshold=0.0,
                  data_dir=data_dir, cache_dir=tmp_path)
    models = robust.defense_models(study, ["SEM", "H"])
    cheap, costly = (robust.RobustConfig(eps=0.02, steps=s, eot=e) for s, e in ((2, 1), (4, 2)))
    seen = []
    monkeypatch.setattr(robust.runner, "run", lambda fn, tasks, *a, **k: seen.extend(tasks))
    robust.precompute(study, [(models, cheap), (models, costly), (models, cheap), ({"mine": models["SEM"]}, costly)], LOCAL)
    assert [(t[1], t[2]["steps"], t[3], t[4]) for t in seen] == [
        (["SEM", "H"], 4, 0, 4), (["SEM", "H"], 4, 4, 8), (["SEM", "H"], 2, 0, 4), (["SEM", "H"], 2, 4, 8)]


def test_robust_rows_on_the_pool_are_byte_identical_to_serial(smoke_zoo, data_dir, tmp_path):
    """06b's fixed-budget table and convergence sweep as pool tasks (all budgets and sweep points
    at once): the same cached CSVs and rows as the serial run, and no shard is left for the caller."""
    from semlib import robust

    cfg = StudyConfig.from_dict({**SMALL, "n_images": 8, "shard_size": 4, "judge_n": 32})  # the smoke zoo is right on 1 of 8
    rcfgs = [robust.RobustConfig(eps=e, steps=2, eot=k, targets=1, votes=2, judge=cfg.judge()) for e, k in ((0.02, 1), (0.5, 2))]
    out = {}
    for name, ex in (("serial", None), ("local", LOCAL)):
        study = Study("smoke", cfg, threshold=0.0, data_dir=data_dir, cache_dir=tmp_path / name)
        models = robust.defense_models(study, ["SEM", "F", "H"])
        rows = [robust.study_rows(study, models, c, progress=False, executor=ex) for c in rcfgs]
        conv = robust.convergence(study, models, rcfgs[0], [1, 2], [1, 2], progress=False, executor=ex,
                                  joint=[(1, 2), (2, 2)], plateau=(2, 1))
        out[name] = (rows, conv)
    assert _csvs(tmp_path / "serial") == _csvs(tmp_path / "local")
    assert all(a.equals(b) for a, b in zip(out["serial"][0], out["local"][0])) and out["serial"][1].equals(out["local"][1])
    # models x 2 shards: two budgets (3 models each), the sweep's new points steps 1 (3), eot 2 (SEM, F; H is
    # deterministic) and joint 1 x 2 (SEM, F); steps 2, eot 1 are the first budget's own rows and joint 2 x 2 is
    # eot 2's point, each cached once; the plateau at 2 x 1 adds only 4 x 1 (3; its 2 x 1 and 2 x 2 are cached)
    assert len(_csvs(tmp_path / "local")) == (3 + 3 + 3 + 2 + 2 + 3) * 2
    conv = out["local"][1]
    joint = conv[conv.sweep == "joint"]
    assert set(joint.label) == {"SEM", "F"} and (joint.value == joint.steps * joint.eot).all()
    same = conv[(conv.sweep == "eot") & (conv.value == 2) & (conv.label != "H")].drop(columns=["sweep", "value"])
    assert same.reset_index(drop=True).equals(joint[joint.value == 4].drop(columns=["sweep", "value"]).reset_index(drop=True))
    plateau = conv[conv.sweep.str.startswith("plateau")].groupby(["sweep", "label"]).apply(
        lambda g: sorted(zip(g.steps, g.eot)), include_groups=False).to_dict()
    assert plateau == {("plateau_steps", m): [(2, 1)] * 8 + [(4, 1)] * 8 for m in "SEM F H".split()} | {
        ("plateau_eot", m): [(2, 1)] * 8 + [(2, 2)] * 8 for m in ("SEM", "F")}  # H: one EOT pass is exact
    assert out["local"][0][1].groupby("label").eot.unique().map(list).to_dict() == {"SEM": [2], "F": [2], "H": [1]}
    whole = pd.concat(out["local"][0])
    assert whole.robust.sum() < whole.clean_correct.sum()  # the large budget breaks what was correct: a real run
