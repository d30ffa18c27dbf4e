"""The explorer's grid (semlib.explore): settings that match the study's own SEMs reuse its curves,
a grid answers exactly what computing would and runs no attack, stale tables are left out, a
setting outside the grid is computed and joins it, and every redraw of the widget replaces the
plot and the accuracy table."""
import json

import pandas as pd
import pytest

from semlib import explore, zoo
from semlib.outputs import zoo_digest
from semlib.study import CurveSpec, Study, StudyConfig

TINY = {"n_images": 3, "steps": 1, "eot": 1, "judge_n": 2, "search_steps": 2, "binary_steps": 1, "shard_size": 3}


@pytest.fixture(scope="module")
def study(data_dir, tmp_path_factory):
    zoo.train_zoo(zoo.load_spec("smoke"), zoo.default_dir("smoke"), data_dir, progress=False)  # reused when trained
    return Study("smoke", StudyConfig.from_dict(TINY), threshold=0.0, data_dir=data_dir,
                 cache_dir=tmp_path_factory.mktemp("curves"))


def _all_sigmas(study) -> tuple[float, ...]:
    return tuple(float(s) for s in study.spec.sigmas)


def test_settings_of_the_studys_own_sems_use_its_variants(study):
    assert explore.variant_for(study, explore.Settings((1, 4), _all_sigmas(study))) == "sem"
    assert explore.variant_for(study, explore.Settings((6, 8), _all_sigmas(study))) == "sem_k68"
    other = explore.variant_for(study, explore.Settings((1, 2), _all_sigmas(study)))
    assert other.startswith("custom:") and study.variant(other).k_range(study.cfg) == (1, 2)
    assert explore.variant_for(study, explore.Settings((1, 4), (0.25,))).startswith("custom:")


def test_the_grid_answers_what_computing_would_without_attacking(study, tmp_path):
    s = explore.Settings((1, 4), _all_sigmas(study), n_images=3)
    computed = explore.run(study, s, progress=False)
    assert computed.source == "computed"
    grid = explore.Grid(computed.rows.copy())
    files = sorted(p.name for p in study.cache_dir.glob("*"))
    again = explore.run(study, s, progress=False, grid=grid)
    assert again.source == "grid" and sorted(p.name for p in study.cache_dir.glob("*")) == files
    pd.testing.assert_frame_equal(again.curves, computed.curves)
    pd.testing.assert_frame_equal(again.accuracy, computed.accuracy)
    fewer = explore.run(study, explore.Settings(**{**s.__dict__, "n_images": 2}), progress=False, grid=grid)
    assert fewer.source == "grid" and fewer.curves.n.eq(2).all()  # a prefix of the grid's images
    targeted = explore.run(study, explore.Settings(**{**s.__dict__, "goal": "targeted", "n_images": 1}),
                           progress=False, grid=grid)
    assert targeted.source == "computed" and grid.curves() == 6  # computed once, then part of the grid
    assert explore.run(study, explore.Settings(**{**s.__dict__, "goal": "targeted", "n_images": 1}),
                       progress=False, grid=grid).source == "grid"


def test_compute_grid_and_stale_tables(study, tmp_path):
    own = explore.Grid()
    added = explore.compute_grid(study, own, [[1, 1]], [[0.25]], ["bim"], ["untargeted"], n_images=2)
    assert added.groupby(["scenario", "variant"]).size().eq(2).all() and added.variant.nunique() == 2
    files = sorted(p.name for p in study.cache_dir.glob("*"))
    again = explore.compute_grid(study, own, [[1, 1]], [[0.25]], ["bim"], ["untargeted"], n_images=2)
    pd.testing.assert_frame_equal(again.reset_index(drop=True), added.reset_index(drop=True), check_dtype=False)
    assert sorted(p.name for p in study.cache_dir.glob("*")) == files  # what the grid holds is not recomputed
    assert explore.compute_grid(study, own, [], [], ["bim"], ["untargeted"]).empty
    contrasts = study.curves([CurveSpec(c, "bim", "untargeted") for c in "FG"], n_images=2, progress=False)
    params = {"PRESET": "smoke", "ZOO": "smoke", "THRESHOLD": 0.0, "STUDY": {**TINY, "n_images": 2}}
    digest = zoo_digest(study.zoo_dir)
    for nb, table, rows in (("08_explore", "grid", added), ("03_whitebox_transfer", "distortions", contrasts)):
        folder = tmp_path / "outputs" / nb / "smoke"
        folder.mkdir(parents=True)
        rows.to_csv(folder / f"tab_{table}.csv", index=False)
        (folder / "metrics.json").write_text(json.dumps({"params": params, "zoo_sha256": digest}))
    grid, stale = explore.Grid.from_outputs(tmp_path, "smoke", study)
    assert stale == [] and grid.curves() == 4  # another n_images or shard size is the same study
    s = explore.Settings((1, 1), _all_sigmas(study), n_images=2)
    assert explore.run(study, s, progress=False, grid=grid).source == "grid"
    for record in ({"params": {**params, "STUDY": {**TINY, "judge_n": 4}}, "zoo_sha256": digest},  # other settings
                   {"params": {**params, "THRESHOLD": 0.5}, "zoo_sha256": digest},  # another collection
                   {"params": params, "zoo_sha256": "0" * 64},  # other weights under the same zoo name
                   {"params": params}):  # a run that recorded no weights
        (folder / "metrics.json").write_text(json.dumps(record))
        grid, stale = explore.Grid.from_outputs(tmp_path, "smoke", study)
        assert stale == [str(folder / "tab_distortions.csv")] and grid.curves() == 2, record  # 08's grid alone


def test_every_redraw_replaces_the_plot_and_the_accuracy_table(study):
    from semlib.widgets import Explorer

    ex = Explorer(study, 2)
    first = ex.run()
    plot, table = ex.plot.value, ex.accuracy.value
    assert first.accuracy.label.iloc[0] in table and "clean MC accuracy" in table
    ex.k.value = (1, 1)
    second = ex.run()
    assert second.accuracy.label.iloc[0] != first.accuracy.label.iloc[0]
    assert ex.plot.value != plot and ex.accuracy.value != table
    assert f"<td>{second.accuracy.label.iloc[0]}</td>" in ex.accuracy.value
    assert f"<td>{first.accuracy.label.iloc[0]}</td>" not in ex.accuracy.value
    assert "computed" in ex.status.value and f"{second.seconds:.2f} s" in ex.status.value
