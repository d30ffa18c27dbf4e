"""Every notebook runs end to end on the smoke preset (papermill); `make test` then checks the
executed notebooks with nbval. Marked slow: it trains the smoke zoo (about a minute)."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from semlib import checklist
from semlib.models import CIFAR10_STD
from semlib.outputs import zoo_digest
from semlib.pipeline import run_notebook

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # fails loudly instead of hanging CI


def _metrics(nb: str) -> dict:
    return json.loads((ROOT / "outputs" / nb / "smoke" / "metrics.json").read_text())


def test_00_data_runs_on_smoke(data_dir):
    out = run_notebook(ROOT / "notebooks" / "00_data.ipynb", "smoke")
    assert out.is_file()
    m = _metrics("00_data")
    assert m["metrics"]["train"]["images"] == 50_000 and m["metrics"]["test"]["jpeg_fallback"] == 25
    assert m["metrics"]["train"]["channel_mean"] == pytest.approx([0.4914, 0.4822, 0.4465], abs=1e-3)
    for key in ("git_sha", "packages", "params", "data_sha256", "wall_seconds"):
        assert key in m
    bal = pd.read_csv(out.parent / "tab_class_balance.csv")
    assert bal["count"].sum() == 60_000
    for f in ("fig_class_balance.png", "fig_image_grid.pdf", "fig_jpeg_fallback.png"):
        assert (out.parent / f).stat().st_size > 1000


def test_01_zoo_runs_on_smoke(data_dir):
    out = run_notebook(ROOT / "notebooks" / "01_zoo.ipynb", "smoke")
    t1 = pd.read_csv(out.parent / "tab_table1.csv")
    assert len(t1) == 9 and set(t1.columns) >= {"arch", "family", "clean", "aca_0.25"}
    assert t1.clean.between(0, 100).all()
    zoo = pd.read_csv(out.parent / "tab_zoo.csv")
    assert (zoo.arch == "wrn28_10").sum() == 4  # sigmas 0, 0.25 + the single-architecture 0.12, 0.5
    m = _metrics("01_zoo")
    assert m["metrics"]["submodels"] == len(zoo)
    assert set(m["data_sha256"]) == {"train", "test"}
    assert m["seeds"] == {"zoo_seed": 0} and m["params"]["PRESET"] == "smoke"
    assert m["packages"]["torch"].startswith("2.13.0") and m["wall_seconds"] >= 0
    assert m["host"]["device"] == ("cpu" if not torch.cuda.is_available() else torch.cuda.get_device_name(0))
    assert m["host"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    cards = [json.loads(p.read_text()) for p in (ROOT / "zoo" / "smoke").glob("*.json")]
    assert cards and all(c["cpu_capability"] == torch.backends.cpu.get_cpu_capability() for c in cards)
    assert (out.parent / "fig_table1.png").stat().st_size > 1000


def _tables(nb: str, *names: str) -> list[pd.DataFrame]:
    return [pd.read_csv(ROOT / "outputs" / nb / "smoke" / f"tab_{n}.csv") for n in names]


def _figures_exist(nb: str, *names: str) -> None:
    for n in names:
        for ext in ("png", "pdf"):
            assert (ROOT / "outputs" / nb / "smoke" / f"fig_{n}.{ext}").stat().st_size > 1000, (nb, n, ext)


def _check_curves(nb: str, labels: set[str], attacks: set[str], goals: set[str]) -> pd.DataFrame:
    rows, tab = _tables(nb, "distortions", "asr")
    n_images = _metrics(nb)["params"]["STUDY"]["n_images"]
    assert set(rows.label) == labels and set(rows.attack) == attacks and set(rows.goal) == goals
    assert rows.groupby(["label", "attack", "goal"]).size().eq(n_images).all()
    assert ((rows.distortion >= 0) | rows.distortion.isna()).all()
    assert tab.asr.between(0, 1).all() and (tab.lo <= tab.asr + 1e-12).all() and (tab.asr <= tab.hi + 1e-12).all()
    m = _metrics(nb)
    assert m["seeds"]["study_seed"] == 0 and m["git_sha"] and set(m["data_sha256"]) == {"train", "test"}
    return rows


def test_02_baselines_runs_on_smoke(data_dir):
    run_notebook(ROOT / "notebooks" / "02_baselines.ipynb", "smoke")
    _check_curves("02_baselines", {"RSE", "ADP", "F", "G", "H", "I"}, {"bim", "mim", "pgd"}, {"untargeted", "targeted"})
    (trained,) = _tables("02_baselines", "baselines")
    assert list(trained.name) == ["rse", "adp"]
    _figures_exist("02_baselines", "fig3")


def test_03_whitebox_transfer_runs_on_smoke(data_dir):
    run_notebook(ROOT / "notebooks" / "03_whitebox_transfer.ipynb", "smoke")
    _check_curves("03_whitebox_transfer", set("ABCDFGHI"), {"bim", "mim", "pgd"}, {"untargeted", "targeted"})
    (fig5,) = _tables("03_whitebox_transfer", "fig5")
    assert fig5.view.nunique() == 2 and fig5[fig5.view.str.contains("<=")].eps.max() == pytest.approx(0.01)
    _figures_exist("03_whitebox_transfer", "fig4", "fig5")


def test_04_query_blackbox_runs_on_smoke(data_dir):
    run_notebook(ROOT / "notebooks" / "04_query_blackbox.ipynb", "smoke")
    rows = _check_curves("04_query_blackbox", set("EJKLM"), {"nes", "spsa"}, {"untargeted", "targeted"})
    assert (rows.gradients == 0).all() and (rows.queries > 0).any()
    _figures_exist("04_query_blackbox", "fig6")


def test_05_ensemble_strategy_runs_on_smoke(data_dir):
    run_notebook(ROOT / "notebooks" / "05_ensemble_strategy.ipynb", "smoke")
    _check_curves("05_ensemble_strategy", {"A", "A (K 6..8)", "A (WRN SEM)", "F", "G"}, {"bim", "mim", "pgd"},
                  {"untargeted", "targeted"})
    _figures_exist("05_ensemble_strategy", "fig7", "fig8")


def test_06_certify_sem_runs_on_smoke(data_dir):
    run_notebook(ROOT / "notebooks" / "06_certify_sem.ipynb", "smoke")
    acc, cert = _tables("06_certify_sem", "clean_accuracy", "certified_accuracy")
    assert {"SEM", "F", "G"} <= set(acc.model) and acc.accuracy.between(0, 1).all()
    assert set(cert.model) == {"SEM", "F", "G"}
    assert (cert.sort_values("radius").groupby("model").accuracy.diff().dropna() <= 0).all()  # falls with radius
    # the pixel curve is the noise-space curve on radii scaled by the noise space's factor
    (rows, pixel) = _tables("06_certify_sem", "certificates", "certified_accuracy_pixel")
    scale = 1.0 if rows.noise_space.iloc[0] == "pixel" else min(CIFAR10_STD)
    assert np.allclose(rows.radius_pixel, rows.radius * scale)
    assert np.allclose(pixel.radius, cert.radius * scale) and (pixel.accuracy.values == cert.accuracy.values).all()
    _figures_exist("06_certify_sem", "clean_accuracy", "certified_accuracy", "certified_accuracy_pixel")


def test_06b_adaptive_runs_on_smoke(data_dir):
    run_notebook(ROOT / "notebooks" / "06b_adaptive.ipynb", "smoke")
    _check_curves("06b_adaptive", {"SEM", "F", "G", "A"}, {"apgd", "bim", "fgsm"}, {"untargeted"})
    rows, tab, conv, conv_rows = _tables("06b_adaptive", "robust_rows", "robust_accuracy", "convergence",
                                         "convergence_rows")
    assert set(tab.label) == {"SEM", "F", "G", "H", "I", "RSE", "ADP"} and (tab.images == 4).all()
    assert (rows.robust <= rows.clean_correct).all() and (tab.robust <= tab.clean).all()
    assert set(conv.sweep) == {"steps", "eot", "joint", "plateau_steps", "plateau_eot"}
    assert set(conv[conv.sweep == "eot"].label) == set(conv[conv.sweep == "joint"].label) == {"SEM", "F", "G"}
    plateau = conv_rows[conv_rows.sweep.str.startswith("plateau")]  # STRONGEST's 2 x 2, each axis doubled
    assert set(zip(plateau.steps, plateau.eot)) == {(2, 2), (4, 2), (2, 4)}
    joint = conv_rows[conv_rows.sweep == "joint"]
    assert sorted(set(joint.value)) == [1, 4] and (joint.value == joint.steps * joint.eot).all()  # [[1, 1], [2, 2]]
    # the table counts the per-image rows it was made of
    per_point = conv_rows.groupby(["label", "sweep", "value"]).robust.mean().mul(100)
    assert np.allclose(conv.set_index(["label", "sweep", "value"]).robust.loc[per_point.index], per_point)
    strong_rows, strong = _tables("06b_adaptive", "strongest_rows", "strongest")  # the plateau's budget, 2 x 2
    assert set(strong.label) == {"SEM", "F", "G"} and (strong.images == 4).all() and (strong_rows.steps == 2).all()
    assert (strong_rows.sweep == "joint").all() and (strong_rows.value == 4).all()
    worst, = _tables("06b_adaptive", "worst_case")  # robust at neither budget is robust in the worst case
    at = tab[(tab.norm == "linf") & np.isclose(tab.eps, strong.eps.iloc[0])].set_index("label").robust
    assert set(worst.label) == {"SEM", "F", "G"} and (worst.images == 4).all()
    assert (worst.set_index("label").robust <= np.minimum(strong.set_index("label").robust, at.loc[worst.label])).all()
    _figures_exist("06b_adaptive", "adaptive", "convergence")


def test_07_claims_runs_on_smoke(data_dir):
    run_notebook(ROOT / "notebooks" / "07_claims.ipynb", "smoke")
    (ledger,) = _tables("07_claims", "ledger")
    assert len(ledger) == 13 and ledger.claim.iloc[-1] == "noise_space"
    # every source notebook ran; 4 smoke images cannot decide a robustness claim
    assert set(ledger.verdict) <= {"supported", "contradicted", "equivalent", "inconclusive", "not evaluable"}
    assert ledger.set_index("claim").drop(["clean_accuracy", "noise_space"]).verdict.isin(
        ["not evaluable", "inconclusive"]).all()
    assert _metrics("07_claims")["metrics"]["verdicts"] == dict(zip(ledger.claim, ledger.verdict))
    (checks,) = _tables("07_claims", "checklist")
    assert set(checks.check) == set(checklist.TEXT) and set(checks.status) <= {"pass", "fail", "no evidence"}
    # 06b ran FGSM and an unbounded budget: those checks find their data (smoke models may leave
    # no image correctly classified, which is "no evidence" of another kind)
    found = checks[checks.check.isin(["iterative_vs_single_step", "unbounded_succeeds"])]
    assert len(found) >= 4 and not found.evidence.str.contains("curves on|no robust-accuracy budget").any()
    # the adaptive claims stand only on a converged attack (params/claims.yaml `converged`)
    converged = checks[checks.check == "converged"].set_index("defense").status.reindex(["SEM", "F", "G"])
    adaptive = ledger.set_index("claim").loc[["adaptive", "adaptive_robust", "adaptive_robust_4"]]
    if not (converged == "pass").all():
        assert (adaptive.verdict == "not evaluable").all(), adaptive
        assert adaptive.comparisons.str.startswith("attack not converged on ").all(), adaptive.comparisons
    plateau = checks[checks.check == "plateau"].set_index("defense").status.reindex(["SEM", "F", "G"])
    strongest = ledger.set_index("claim").loc["adaptive_strongest"]  # waits for the plateau check alone
    assert plateau.notna().all() and (strongest.verdict == "not evaluable" or (plateau == "pass").all()), strongest
    _figures_exist("07_claims", "ledger")


def test_smoke_curves_are_byte_identical_for_a_seed(data_dir, tmp_path):
    """Issue 6, determinism on the smoke preset: the same seed and params give byte-identical
    curve CSVs from scratch; another seed gives other draws."""
    from semlib.params import load_params
    from semlib.study import Study, StudyConfig, specs

    p = load_params("03_whitebox_transfer", "smoke", ROOT)
    curves = specs("ABF", ["pgd"], ["untargeted", "targeted"])
    out = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        cfg = StudyConfig.from_dict({**p["STUDY"], "seed": seed})
        study = Study("smoke", cfg, threshold=p["THRESHOLD"], data_dir=data_dir, cache_dir=tmp_path / name)
        study.curves(curves, progress=False)
        out[name] = sorted(f.read_bytes() for f in (tmp_path / name).glob("*.csv"))
    assert out["a"] == out["b"]
    assert out["a"] != out["c"]


def test_08_explore_runs_on_smoke(data_dir):
    out = run_notebook(ROOT / "notebooks" / "08_explore.ipynb", "smoke")
    nb = json.loads(out.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    shown = json.dumps(outputs)
    assert "application/vnd.jupyter.widget-view+json" in shown  # the control panel
    assert "grid: " in shown and ", F, G: " in shown  # the grid it answers from, and the first run's curves
    record = json.loads((out.parent / "metrics.json").read_text())
    assert record["zoo_sha256"] == zoo_digest(ROOT / "zoo" / "smoke")  # the weights its grid must match
    metrics = record["metrics"]
    assert metrics["grid_added"] > 0 and metrics["grid_curves"] >= 2  # params/08_explore/smoke.yaml's GRID ran


def test_explore_runs_and_reuses_its_cache(data_dir, tmp_path):
    from semlib import explore
    from semlib.study import Study, StudyConfig

    cfg = StudyConfig.from_dict({"n_images": 3, "steps": 1, "eot": 1, "judge_n": 2, "search_steps": 2,
                                 "binary_steps": 1, "shard_size": 1})
    study = Study("smoke", cfg, threshold=0.0, data_dir=data_dir, cache_dir=tmp_path)
    s = explore.Settings(k_range=(1, 2), sigmas=(0.25,), archs=("vgg11", "resnet18", "wrn28_10"), n_images=2)
    first = explore.run(study, s, progress=False)
    assert sorted(first.members) == ["resnet18_s0.25", "vgg11_s0.25", "wrn28_10_s0.25"]
    assert set(first.curves.label) == {f"A ({s.name()})", "F", "G"} and first.rows.groupby("label").size().eq(2).all()
    files = sorted(tmp_path.glob("*.csv"))
    again = explore.run(study, explore.Settings(**{**s.__dict__, "n_images": 1}), progress=False)
    assert sorted(tmp_path.glob("*.csv")) == files  # a smaller prefix: nothing new computed
    assert again.rows.groupby("label").size().eq(1).all()
    with pytest.raises(ValueError, match="no admitted sub-model has sigma"):
        explore.run(study, explore.Settings(sigmas=(3.0,), n_images=1), progress=False)
