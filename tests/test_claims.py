"""The claims ledger's statistics on synthetic curves with known answers."""
import numpy as np
import pandas as pd
import pytest

from semlib import claims
from semlib.claims import (INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Claim, Curve, paired_difference, success_area,
                           verdict)


def rows_of(label, distortions, attack="bim", goal="untargeted", scenario=None, variant="sem"):
    d = np.asarray(distortions, dtype=float)
    return pd.DataFrame({"label": label, "scenario": scenario or label, "variant": variant, "attack": attack,
                         "goal": goal, "example": np.arange(len(d)), "distortion": d, "clean_correct": True})


def test_success_area_by_hand():
    area = success_area([0.0, 0.05, 0.1, 0.3, np.nan], eps_hi=0.1)
    assert area.tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("lo, hi, rel, expected", [
    (0.01, 0.2, ">", SUPPORTED), (-0.02, 0.03, ">", NOT_SUPPORTED), (-0.1, 0.2, ">", INCONCLUSIVE),
    (-0.3, -0.1, ">", NOT_SUPPORTED),
    (-0.1, 0.04, "<=", SUPPORTED), (0.01, 0.2, "<=", NOT_SUPPORTED), (-0.1, 0.2, "<=", INCONCLUSIVE),
])
def test_verdict_rules(lo, hi, rel, expected):
    assert verdict(lo, hi, rel, margin=0.05) == expected


def test_a_clearly_weaker_model_is_detected():
    rng = np.random.default_rng(0)
    robust = rng.uniform(0.04, 0.08, 60)
    weak = robust / 4  # every image falls at a quarter of the budget
    rows = pd.concat([rows_of("weak", weak), rows_of("robust", robust)])
    r = paired_difference(rows, "weak", "robust", [("bim", "untargeted")], eps_hi=0.1)
    assert r["diff"] > 0 and r["lo"] > 0 and r["images"] == 60
    assert verdict(r["lo"], r["hi"], ">", 0.05) == SUPPORTED
    back = paired_difference(rows, "robust", "weak", [("bim", "untargeted")], eps_hi=0.1)
    assert back["diff"] == pytest.approx(-r["diff"])
    assert verdict(back["lo"], back["hi"], ">", 0.05) == NOT_SUPPORTED


def test_identical_curves_support_no_difference_and_panels_cluster_by_image():
    d = np.linspace(0.0, 0.09, 30)
    rows = pd.concat([rows_of(lbl, d, a) for lbl in ("x", "y") for a in ("bim", "pgd")])
    r = paired_difference(rows, "x", "y", [("bim", "untargeted"), ("pgd", "untargeted")], eps_hi=0.1)
    assert r["diff"] == r["lo"] == r["hi"] == 0.0 and r["images"] == 30 and r["panels"] == 2
    assert verdict(r["lo"], r["hi"], "<=", 0.05) == SUPPORTED


def test_every_variant_compares_with_the_mean_of_several_curves():
    rows = pd.concat([rows_of("sem", [0.0] * 10), rows_of("single a", [0.05] * 10, scenario="submodel", variant="a"),
                      rows_of("single b", [np.nan] * 10, scenario="submodel", variant="b")])
    r = paired_difference(rows, "sem", Curve("submodel", None), [("bim", "untargeted")], eps_hi=0.1)
    assert r["y"] == "single (mean of 2)" and r["y_curves"] == "single a,single b"
    assert r["diff"] == pytest.approx(1.0 - 0.25)
    one = paired_difference(rows, "sem", Curve("submodel", "b"), [("bim", "untargeted")], eps_hi=0.1)
    assert one["y"] == "single b" and one["diff"] == pytest.approx(1.0)


def test_curves_are_selected_by_scenario_and_variant_not_by_label():
    """Two curves of one scenario differ only in their SEM variant; their labels are for display."""
    rows = pd.concat([rows_of("A", [0.08] * 12), rows_of("shown as anything", [0.02] * 12, scenario="A",
                                                           variant="sem_k68")])
    r = paired_difference(rows, Curve("A", "sem_k68"), "A", [("bim", "untargeted")], eps_hi=0.1)
    assert r["x"] == "shown as anything" and r["diff"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match=r"no rows for curve 'A\[sem_wrn\]'"):
        paired_difference(rows, Curve("A", "sem_wrn"), "A", [("bim", "untargeted")], eps_hi=0.1)


def test_tables_written_before_the_scenario_column_read_the_same(tmp_path):
    old = rows_of("A (K 6..8)", [0.02] * 3, scenario="A", variant="sem_k68").rename(columns={"scenario": "defense"})
    old.to_csv(tmp_path / "curves.csv", index=False)
    assert claims.read_rows(tmp_path / "curves.csv")[["scenario", "variant"]].drop_duplicates().values.tolist() == [
        ["A", "sem_k68"]]
    clean = pd.DataFrame({"example": [0, 0], "clean_correct": [True, False], "label": ["SEM", "single smoothed vgg11_s1.5"],
                          "attack": "clean", "goal": "untargeted"})
    clean.to_csv(tmp_path / "clean.csv", index=False)
    assert claims.read_rows(tmp_path / "clean.csv")[["scenario", "variant"]].values.tolist() == [
        ["SEM", "sem"], ["submodel", "vgg11_s1.5"]]


def test_missing_curve_is_a_clear_error():
    with pytest.raises(ValueError, match="no rows for curve 'Z'"):
        paired_difference(rows_of("A", [0.1]), "Z", "A", [("bim", "untargeted")], eps_hi=0.1)


def test_ledger_reports_unrun_notebooks(tmp_path):
    (tmp_path / "03_whitebox_transfer" / "smoke").mkdir(parents=True)
    rows = pd.concat([rows_of(lbl, np.full(20, v), a, g) for lbl, v in (("H", 0.01), ("I", 0.05))
                      for a in ("bim", "mim", "pgd") for g in ("untargeted", "targeted")])
    rows.to_csv(tmp_path / "03_whitebox_transfer" / "smoke" / "tab_distortions.csv", index=False)
    only = [c for c in claims.paper_claims(0.0157) if c.key in ("H_vs_I", "adaptive")]
    ledger, details = claims.ledger(tmp_path, "smoke", only, eps_max=0.1, margin=0.05, n_boot=200)
    assert ledger.set_index("claim").verdict.to_dict() == {"H_vs_I": SUPPORTED, "adaptive": "not computed"}
    assert len(details) == 1 and details["diff"].iloc[0] == pytest.approx(0.4)
    assert "| the plain ensemble (H)" in claims.markdown(ledger)


def test_every_paper_claim_is_in_the_ledger():
    keys = [c.key for c in claims.paper_claims(0.0157)]
    assert keys == ["H_vs_I", "F_vs_G", "B_weakest", "A_vs_F_small_eps", "K68_vs_K14", "WRN_vs_hetero",
                    "clean_accuracy", "query_E_vs_J", "adaptive"]
    assert all(isinstance(c, Claim) and c.comparisons for c in claims.paper_claims(0.01))


def test_noise_space_finding(tmp_path):
    import json

    p = tmp_path / "r.json"
    p.write_text(json.dumps({"noise_space": [{"arch": "resnet18", "pixel_aca": 0.26, "normalized_aca": 0.62}]}))
    row = claims.noise_space_finding(p)
    assert row["verdict"] == NOT_SUPPORTED and "pixel 0.26 [0.18, 0.36]" in row["comparisons"]
    p.write_text(json.dumps({"noise_space": [{"arch": "resnet18", "pixel_aca": 0.55, "normalized_aca": 0.62}]}))
    assert claims.noise_space_finding(p)["verdict"] == INCONCLUSIVE
