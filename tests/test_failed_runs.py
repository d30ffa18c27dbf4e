"""A failed run never looks finished: a notebook that dies midway leaves the last finished
``outputs/<nb>/<preset>/`` untouched and its own files in ``<preset>.failed/`` with a marker;
files are written with the user's umask; the CLI answers a missing notebook or preset in one line."""
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from semlib import artifacts
from semlib.outputs import FAILED_MARKER, STAGING_ENV, OutputDir, StagedRun, environ
from semlib.pipeline import RunFailed, run_notebook

ROOT = Path(__file__).resolve().parent.parent

CELLS = [
    "from semlib.outputs import OutputDir\nimport matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "import pandas as pd",
    "out = OutputDir('tiny', PRESET)\nout.save_table(pd.DataFrame({'mode': [MODE]}), 'mode')",
    "if MODE == 'fail':\n    raise RuntimeError('boom midway')",
    "fig = plt.figure(figsize=(1, 1))\nout.save_figure(fig, 'mode', dpi=20)\nout.write_metrics({'mode': MODE})",
]


@pytest.fixture
def project(tmp_path):
    """A project with one tiny notebook that writes a table, may raise, then writes a figure and metrics."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "params" / "tiny").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('PRESET = "smoke"\nMODE = "ok"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "notebooks" / "tiny.ipynb")
    return tmp_path


def _run(project, mode):
    (project / "params" / "tiny" / "smoke.yaml").write_text(f"MODE: {mode}\n")
    return run_notebook(project / "notebooks" / "tiny.ipynb", "smoke", project)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_failed_run_keeps_the_last_finished_outputs(project):
    old = os.umask(0o022)
    try:
        out = _run(project, "first")
        final = project / "outputs" / "tiny" / "smoke"
        assert out == final / "tiny.ipynb"
        assert sorted(p.name for p in final.iterdir()) == ["fig_mode.pdf", "fig_mode.png", "metrics.json",
                                                           "tab_mode.csv", "tiny.ipynb"]
        assert {oct(p.stat().st_mode & 0o777) for p in final.iterdir()} == {"0o644"}  # umask 022, not mkstemp's 0600
        assert oct(final.stat().st_mode & 0o777) == "0o755"
        before = _snapshot(final)

        with pytest.raises(RunFailed) as info:
            _run(project, "fail")
        msg = str(info.value)
        assert "\n" not in msg and "RuntimeError: boom midway" in msg and "smoke.failed" in msg, msg
        assert _snapshot(final) == before  # not one byte nor mtime of the finished run changed
        failed = project / "outputs" / "tiny" / "smoke.failed"
        assert sorted(p.name for p in failed.iterdir()) == [FAILED_MARKER, "tab_mode.csv", "tiny.ipynb"]
        assert "fail" in (failed / "tab_mode.csv").read_text()  # the new table went there, not into smoke/
        marker = (failed / FAILED_MARKER).read_text()
        assert marker.startswith("UNFINISHED: this run of tiny on preset smoke") and "RuntimeError: boom midway" in marker
        assert sorted(p.name for p in final.parent.iterdir()) == ["smoke", "smoke.failed"]  # no staging left behind

        _run(project, "second")
        assert "second" in (final / "tab_mode.csv").read_text()
        assert sorted(p.name for p in final.parent.iterdir()) == ["smoke"]  # success clears the stale failure
    finally:
        os.umask(old)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_first_run_that_fails_publishes_nothing(project):
    with pytest.raises(RunFailed):
        _run(project, "fail")
    assert sorted(p.name for p in (project / "outputs" / "tiny").iterdir()) == ["smoke.failed"]


def test_staged_run_without_a_kernel(tmp_path):
    final = tmp_path / "outputs" / "nb" / "smoke"
    artifacts.atomic_write_text(final / "metrics.json", "old\n")
    with pytest.raises(KeyboardInterrupt):
        with StagedRun("nb", "smoke", tmp_path) as run:
            artifacts.atomic_write_text(run.path / "tab_x.csv", "new\n")
            raise KeyboardInterrupt  # an interrupted run is a failed run too
    assert (final / "metrics.json").read_text() == "old\n" and not (final / "tab_x.csv").exists()
    assert (final.with_name("smoke.failed") / FAILED_MARKER).read_text().startswith("UNFINISHED")
    with StagedRun("nb", "smoke", tmp_path) as run:
        artifacts.atomic_write_text(run.path / "metrics.json", "new\n")
        assert (final / "metrics.json").read_text() == "old\n"  # still the old one until the swap
    assert (final / "metrics.json").read_text() == "new\n"
    assert sorted(p.name for p in final.parent.iterdir()) == ["smoke"]


def test_interrupted_swap_is_recovered(tmp_path):
    """A crash between the two renames of a swap (where no atomic exchange exists) leaves
    ``<preset>.previous``; the next run puts it back before anything else."""
    previous = tmp_path / "outputs" / "nb" / "smoke.previous"
    artifacts.atomic_write_text(previous / "metrics.json", "old\n")
    with pytest.raises(RuntimeError):
        with StagedRun("nb", "smoke", tmp_path):
            raise RuntimeError("x")
    assert (tmp_path / "outputs" / "nb" / "smoke" / "metrics.json").read_text() == "old\n"
    assert not previous.exists()


def test_output_dir_writes_to_staging_only_for_its_own_run(tmp_path):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "params").mkdir()
    assert OutputDir("nb", "smoke", tmp_path).path == tmp_path / "outputs" / "nb" / "smoke"  # interactive
    with StagedRun("nb", "smoke", tmp_path) as run, environ(run.env()):
        assert OutputDir("nb", "smoke", tmp_path).path == run.path
        assert OutputDir("nb", "smoke").path == run.path
        assert OutputDir("other", "smoke", tmp_path).path == tmp_path / "outputs" / "other" / "smoke"
        assert run.path.parent.parent == tmp_path / "outputs"  # 07_claims finds outputs/ from its own folder
    assert STAGING_ENV not in os.environ


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        artifacts.atomic_write_text(tmp_path / "a.txt", "x")
        artifacts.write_json(tmp_path / "b.json", {"x": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == mode
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == mode
    assert artifacts.current_umask() == old


@pytest.mark.parametrize("executor", [[], ["--executor", "ray"]], ids=["serial", "ray"])
@pytest.mark.parametrize("args, fragment", [
    (["--preset", "smoke", "notebooks/99_missing.ipynb"], "notebook notebooks/99_missing.ipynb not found; notebooks: 00_data"),
    (["--preset", "laptp", "notebooks/00_data.ipynb"], "no parameters"),
], ids=["missing notebook", "missing preset"])
def test_cli_answers_a_missing_notebook_or_preset_in_one_line(args, fragment, executor):
    proc = subprocess.run([sys.executable, "-m", "semlib.pipeline", *executor, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("semlib.pipeline: ") and fragment in lines[0], proc.stderr


def test_cli_answers_a_failed_notebook_in_one_line(monkeypatch, capsys):
    from semlib import pipeline

    def fail(nb, preset, root, extra):
        raise RunFailed("00_data.ipynb (smoke) failed: RuntimeError: boom; its partial outputs are in x.failed")

    monkeypatch.setattr(pipeline, "run_notebook", fail)
    assert pipeline.main(["--preset", "smoke", "notebooks/00_data.ipynb", "notebooks/01_zoo.ipynb"]) == 1
    err = capsys.readouterr().err
    assert err == "semlib.pipeline: 00_data.ipynb (smoke) failed: RuntimeError: boom; its partial outputs are in x.failed\n"
