"""The run plan (semlib.plan): the machine score, estimates scaled from a notebook's last finished
run, what the plan says when it cannot know, and the pipeline printing it before running."""
import json

import nbformat
import pytest

from semlib import artifacts, plan
from semlib.pipeline import main, run_notebook


@pytest.fixture
def project(tmp_path):
    """A project with one notebook (parameters PRESET, STUDY, MODE) that writes metrics.json."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "params" / "tiny").mkdir(parents=True)
    (tmp_path / "params" / "tiny" / "smoke.yaml").write_text("STUDY: {n_images: 8}\n")
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('PRESET = "smoke"\nSTUDY = {}\nMODE = "ok"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("from semlib.outputs import OutputDir\n"
                                                  "OutputDir('tiny', PRESET).write_metrics({'mode': MODE})")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "notebooks" / "tiny.ipynb")
    return tmp_path


def _reference(project, wall=100.0, score=200.0, cpu="AVX2", params=None, reuse=None):
    folder = project / "outputs" / "tiny" / "smoke"
    folder.mkdir(parents=True, exist_ok=True)
    params = {"PRESET": "smoke", "STUDY": {"n_images": 8}} if params is None else params
    record = {"wall_seconds": wall, "params": params, "host": {"machine_score": score, "cpu_capability": cpu}}
    (folder / "metrics.json").write_text(json.dumps({**record, "cache_reuse": reuse} if reuse else record))


def test_machine_score_is_a_positive_rate():
    score = plan.machine_score(seconds=0.2, batch=8, repeats=2)
    assert score > 0 and score == score  # images per second, not NaN


def test_estimate_scales_the_reference_by_the_machines_speed(project):
    _reference(project, wall=100.0, score=200.0)
    s = plan.step(project / "notebooks" / "tiny.ipynb", "smoke", project, score=50.0)
    assert s.estimate == pytest.approx(400.0) and s.note == ""  # a machine 4x slower: 4x longer
    assert (s.reference_seconds, s.reference_cpu) == (100.0, "AVX2")
    faster = plan.step(project / "notebooks" / "tiny.ipynb", "smoke", project, score=400.0)
    assert faster.estimate == pytest.approx(50.0)


def test_more_images_scale_the_estimate_other_changes_are_flagged(project):
    _reference(project, params={"PRESET": "smoke", "STUDY": {"n_images": 2}})
    s = plan.step(project / "notebooks" / "tiny.ipynb", "smoke", project, score=200.0)
    assert s.estimate == pytest.approx(400.0) and "images 2 -> 8" in s.note
    _reference(project, params={"PRESET": "smoke", "STUDY": {"n_images": 8}, "MODE": "other"})
    (project / "params" / "tiny" / "smoke.yaml").write_text("STUDY: {n_images: 8}\nMODE: new\n")
    s = plan.step(project / "notebooks" / "tiny.ipynb", "smoke", project, score=200.0)
    assert s.estimate == pytest.approx(100.0) and "parameters changed since that run (MODE): rough" in s.note


@pytest.mark.parametrize("reference, note", [
    (None, "no finished run of this preset"),
    ({"score": None}, "recorded no machine score"),
])
def test_no_reference_no_number(project, reference, note):
    if reference is not None:
        _reference(project, **reference)
    s = plan.step(project / "notebooks" / "tiny.ipynb", "smoke", project, score=100.0)
    assert s.estimate is None and note in s.note
    text = plan.describe([s], "smoke", 100.0)
    assert "tiny" in text and "?" in text and "total unknown" in text


def test_a_reference_run_that_reused_earlier_results_gives_a_lower_bound(project):
    _reference(project, wall=10.0, reuse={"results_read": 40, "from_earlier_runs": 30})
    s = plan.step(project / "notebooks" / "tiny.ipynb", "smoke", project, score=200.0)
    assert s.lower_bound and s.estimate == pytest.approx(10.0) and "reused 30 of 40 results" in s.note
    text = plan.describe([s, plan.Step("b", 60.0, 60.0, "AVX2")], "smoke", 200.0)
    assert ">=10 s" in text and "total >=70 s" in text
    _reference(project, wall=10.0, reuse={"results_read": 40, "from_earlier_runs": 0})  # all computed by that run
    s = plan.step(project / "notebooks" / "tiny.ipynb", "smoke", project, score=200.0)
    assert not s.lower_bound and s.note == "" and "~10 s" in plan.describe([s], "smoke", 200.0)


def test_describe_totals_what_it_knows(project):
    steps = [plan.Step("a", 60.0, 30.0, "AVX512"), plan.Step("b", None, note="no finished run"),
             plan.Step("c", 3600.0, 1800.0, "AVX2")]
    text = plan.describe(steps, "laptop", 123.0)
    assert "~60 s" in text and "last run 30 s on AVX512" in text and "~60 min" in text and "last run 30 min on AVX2" in text
    assert "total ~61 min plus 1 notebook(s) without an estimate" in text


def test_pipeline_prints_the_plan_and_stops(capsys):
    assert main(["--plan", "--preset", "smoke", "notebooks/07_claims.ipynb", "notebooks/00_data.ipynb"]) == 0
    out = capsys.readouterr().out
    assert "plan: 2 notebook(s), preset smoke" in out and "07_claims" in out and "00_data" in out
    assert "done in" not in out  # nothing ran


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_pipeline_run_records_its_machine_score(project, monkeypatch):
    monkeypatch.setenv(artifacts.SCORE_ENV, "321.25")
    run_notebook(project / "notebooks" / "tiny.ipynb", "smoke", project)
    record = json.loads((project / "outputs" / "tiny" / "smoke" / "metrics.json").read_text())
    assert record["host"]["machine_score"] == pytest.approx(321.2, abs=0.06)
    s = plan.step(project / "notebooks" / "tiny.ipynb", "smoke", project, score=321.25)
    assert s.estimate == pytest.approx(record["wall_seconds"], rel=1e-3, abs=0.01)
    monkeypatch.setenv(artifacts.SCORE_ENV, "not a number")
    assert artifacts.recorded_score() is None
