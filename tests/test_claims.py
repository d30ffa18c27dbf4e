"""The claims ledger on synthetic per-image tables with known answers: the analysis plan, curve
selection by (scenario, variant), Holm over the ledger, accuracy claims, legacy tables.
The paired statistic itself: tests/test_paired.py."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from semlib import claims, paper
from semlib.claims import Claim, Curve, Plan, accuracy_comparison, distortion_pairs
from semlib.paired import CONTRADICTED, EQUIVALENT, INCONCLUSIVE, NOT_EVALUABLE, SUPPORTED
from semlib.outputs import project_root

CEIL = 0.125
WB = [(a, g) for g in ("untargeted", "targeted") for a in ("bim", "mim", "pgd")]


def rows_of(label, distortions, attack="bim", goal="untargeted", scenario=None, variant="sem", correct=True):
    d = np.asarray(distortions, dtype=float)
    return pd.DataFrame({"label": label, "scenario": scenario or label, "variant": variant, "attack": attack,
                         "goal": goal, "example": np.arange(len(d)), "distortion": d, "clean_correct": correct})


def _write(tmp_path, notebook, rows):
    (tmp_path / notebook / "smoke").mkdir(parents=True, exist_ok=True)
    rows.to_csv(tmp_path / notebook / "smoke" / "tab_distortions.csv", index=False)


def test_curve_names():
    assert Curve.parse("A") == Curve("A", "sem") and Curve.parse("A/sem_k68") == Curve("A", "sem_k68")
    assert Curve.parse("submodel/*") == Curve("submodel", None) and str(Curve("A", "sem_wrn")) == "A/sem_wrn"
    with pytest.raises(ValueError, match="a curve is 'SCENARIO' or 'SCENARIO/VARIANT'"):
        Curve.parse("A/b/c")


def test_the_plan_holds_every_paper_claim_in_order():
    plan = Plan.from_yaml(project_root() / "params" / "claims.yaml")
    assert [c.key for c in plan.claims] == ["H_vs_I", "F_vs_G", "B_weakest", "A_vs_F", "K68_vs_K14", "WRN_vs_hetero",
                                            "clean_accuracy", "query_E_vs_J", "adaptive", "adaptive_robust",
                                            "adaptive_robust_4", "adaptive_strongest"]
    assert plan.alpha == 0.05 and plan.bound == 1.25 and plan.accuracy_margin == 0.05
    k68 = next(c for c in plan.claims if c.key == "K68_vs_K14")
    assert k68.comparisons == [(Curve("A", "sem_k68"), ">", Curve("A"))] and len(k68.panels) == 6


@pytest.mark.parametrize("text, msg", [
    ("claims: []\nbound: 0.9\n", "need 0 < alpha < 1, bound > 1"),
    ("claims: [{key: a, text: t, figure: f, source: s, comparisons: [[A, '<', B]], panels: [[bim, untargeted]]}]\n",
     "relation must be one of"),
    ("claims: [{key: a, text: t, figure: f, source: s, comparisons: [[A, '>', B]], panels: []}]\n",
     "panels must be a non-empty list"),
    ("claims: [{key: a, text: t}]\n", "a claim has a missing or unknown field"),
    ("claim: []\n", "the analysis plan is a mapping with a 'claims' list"),
])
def test_bad_plans_are_one_line(tmp_path, text, msg):
    (tmp_path / "plan.yaml").write_text(text)
    with pytest.raises(ValueError, match=msg):
        Plan.from_yaml(tmp_path / "plan.yaml")


def test_curves_are_selected_by_scenario_and_variant_not_by_label():
    """Two curves of one scenario differ only in their SEM variant; their labels are for display."""
    rows = pd.concat([rows_of("A", [0.08] * 12), rows_of("shown as anything", [0.02] * 12, scenario="A",
                                                           variant="sem_k68")])
    pairs, x, y = distortion_pairs(rows, Curve("A", "sem_k68"), "A", [("bim", "untargeted")], ceiling=CEIL)
    assert x == "shown as anything" and y == "A" and pairs.n == 12
    assert np.allclose(pairs.log_ratios("seen"), math.log(4))
    with pytest.raises(ValueError, match="no rows for curve 'A/sem_wrn'"):
        distortion_pairs(rows, Curve("A", "sem_wrn"), "A", [("bim", "untargeted")], ceiling=CEIL)


def test_ledger_verdicts_holm_and_unrun_notebooks(tmp_path):
    """H needs a fifth of I's distortion on every image and panel: supported; A-D equal up to
    +-10% noise: B is not the weakest, they are equivalent within the bound; the adaptive
    notebook never ran: 'not computed'."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.01, 0.02, 30)
    rows = pd.concat([rows_of(lbl, base * f * rng.uniform(0.9, 1.1, 30), a, g) for lbl, f in
                      (("H", 0.2), ("I", 1.0), ("A", 1.0), ("B", 1.0), ("C", 1.0), ("D", 1.0)) for a, g in WB])
    _write(tmp_path, "03_whitebox_transfer", rows)
    plan = Plan.from_yaml(project_root() / "params" / "claims.yaml")
    plan.claims = [c for c in plan.claims if c.key in ("H_vs_I", "B_weakest", "adaptive")]
    ledger, details = claims.ledger(tmp_path, "smoke", plan, ceiling=CEIL, n_boot=300)
    v = ledger.set_index("claim").verdict.to_dict()
    assert v["H_vs_I"] == SUPPORTED and v["B_weakest"] == EQUIVALENT and v["adaptive"] == "not computed"
    h = details[details.claim == "H_vs_I"].iloc[0]
    assert h.estimate == pytest.approx(5.0, rel=0.1) and h.lo > 4 and h.n == 30
    assert (details.p_holm_direction >= details.p_direction).all() and len(details) == 4
    assert "| the plain ensemble (H)" in claims.markdown(ledger)


def test_accuracy_claims_compare_errors_with_the_mean_of_several_curves(tmp_path):
    n = 200
    rng = np.random.default_rng(1)
    sem = rng.random(n) < 0.85
    rows = pd.concat([rows_of("SEM", np.zeros(n), "clean", correct=sem),
                      rows_of("single smoothed a", np.zeros(n), "clean", scenario="submodel", variant="a",
                              correct=rng.random(n) < 0.6),
                      rows_of("single smoothed b", np.zeros(n), "clean", scenario="submodel", variant="b",
                              correct=rng.random(n) < 0.6),
                      rows_of("F", np.zeros(n), "clean", correct=sem.copy())])
    r = accuracy_comparison(rows, "SEM", "submodel/*", [("clean", "untargeted")], margin=0.05, n_boot=400)
    assert r["y"] == "single smoothed (mean of 2)" and r["estimate"] < -0.15 and r["p"][SUPPORTED] < 0.01
    same = accuracy_comparison(rows, "SEM", "F", [("clean", "untargeted")], margin=0.05, n_boot=400)
    assert same["estimate"] == 0 and same["informative"] == 0  # identical images: no evidence either way
    _write(tmp_path, "06_certify_sem", rows)
    plan = Plan.from_yaml(project_root() / "params" / "claims.yaml")
    plan.claims = [c for c in plan.claims if c.key == "clean_accuracy"]
    ledger, _ = claims.ledger(tmp_path, "smoke", plan, ceiling=CEIL, n_boot=400)
    # SEM vs F: no discordant image in 200, so a difference beyond the 5-point margin is excluded
    assert ledger.verdict.iloc[0] == SUPPORTED


def test_a_reversed_claim_is_contradicted(tmp_path):
    rng = np.random.default_rng(2)
    base = rng.uniform(0.01, 0.02, 40)
    rows = pd.concat([rows_of(lbl, base * f * rng.uniform(0.8, 1.2, 40), "apgd") for lbl, f in
                      (("SEM", 0.3), ("F", 1.0), ("G", 1.0))])
    _write(tmp_path, "06b_adaptive", rows)
    plan = Plan.from_yaml(project_root() / "params" / "claims.yaml")
    plan.claims = [c for c in plan.claims if c.key == "adaptive"]
    ledger, details = claims.ledger(tmp_path, "smoke", plan, ceiling=CEIL, n_boot=300)
    assert ledger.verdict.iloc[0] == CONTRADICTED and (details.verdict == CONTRADICTED).all()


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


def test_a_claim_is_checked_when_made():
    with pytest.raises(ValueError, match="'<=' for an accuracy claim"):
        Claim("k", "t", "f", "s", [("SEM", ">", "F")], [("clean", "untargeted")], score="error")
    with pytest.raises(ValueError, match="score must be one of"):
        Claim("k", "t", "f", "s", [("SEM", ">", "F")], [("bim", "untargeted")], score="asr")


def test_noise_space_finding(tmp_path):
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"noise_space": [{"arch": "resnet18", "pixel_aca": 0.26, "normalized_aca": 0.62}]}))
    row = paper.noise_space_finding(p)
    assert row["verdict"] == CONTRADICTED and "pixel 0.26 [0.18, 0.36]" in row["comparisons"]
    p.write_text(json.dumps({"noise_space": [{"arch": "resnet18", "pixel_aca": 0.55, "normalized_aca": 0.62}]}))
    assert paper.noise_space_finding(p)["verdict"] == INCONCLUSIVE


def test_the_strongest_attack_claim_reads_each_defenses_largest_sweep_point(tmp_path):
    """adaptive_strongest: 06b's STRONGEST rows at each defense's strongest attack (its joint
    sweep's largest point, or its most iterations without a joint sweep), paired across
    defenses. The weaker points, where F would keep more images than the SEM, are ignored: a
    true 15-point gap at the strongest point on 300 images is supported, none is not."""
    rng = np.random.default_rng(7)
    n = 300
    sem = rng.random(n) < 0.4
    weaker = sem & (rng.random(n) > 0.4)  # loses about 16 points, only on images the SEM keeps

    def rows(label, sweep, value, robust):
        return pd.DataFrame({"label": label, "scenario": label, "variant": "sem", "attack": "robust",
                             "goal": "linf 4/255", "example": np.arange(n), "robust": robust, "clean_correct": True,
                             "sweep": sweep, "value": value})

    plan = Plan.from_yaml(project_root() / "params" / "claims.yaml")
    plan.claims = [c for c in plan.claims if c.key == "adaptive_strongest"]
    for f_last, verdict in ((weaker, SUPPORTED), (sem, EQUIVALENT)):
        conv = pd.concat([rows(d, sweep, v, r) for d, r in (("SEM", sem), ("F", f_last), ("G", weaker))
                          for sweep, v in (("joint", 80), ("joint", 25600), ("steps", 400))]
                         + [rows("F", "joint", 1280, np.ones(n, bool)), rows("F", "steps", 800, np.ones(n, bool)),
                            rows("SEM", "eot", 256, np.zeros(n, bool))])  # not the strongest points
        out = tmp_path / verdict
        (out / "06b_adaptive" / "smoke").mkdir(parents=True)
        conv.to_csv(out / "06b_adaptive" / "smoke" / "tab_strongest_rows.csv", index=False)
        ledger, details = claims.ledger(out, "smoke", plan, ceiling=CEIL, n_boot=2000)
        assert ledger.verdict.iloc[0] == (verdict if verdict == SUPPORTED else INCONCLUSIVE), details.to_dict("records")
        assert (details.n == n).all() and details.score.eq("strongest").all()
        assert list(details.verdict) == [verdict, SUPPORTED]  # F vs SEM as built; G loses 16 points in both
    picked = claims.strongest(pd.concat([rows("H", "steps", 10, sem), rows("H", "steps", 400, weaker),
                                         rows("F", "joint", 80, sem), rows("F", "steps", 800, sem)]))
    assert picked.groupby("label").value.unique().map(list).to_dict() == {"H": [400], "F": [80]}
    assert set(picked.attack) == {"strongest"} and set(picked.goal) == {"plateau budget"}


def test_robust_accuracy_claims_from_simulated_paired_outcomes(tmp_path):
    """The robust score: per image, robust or not at one budget, paired across defenses. A true
    12-point gap on 400 images is supported; identical outcomes (no discordant image of 400) are
    equivalent; a reversed gap is contradicted; 2% of images flipped either way is equivalent
    within the 5-point margin."""
    from semlib.robust import budget

    rng = np.random.default_rng(4)
    n = 400
    sem = rng.random(n) < 0.50

    def rows(label, robust):
        return pd.DataFrame({"label": label, "scenario": label, "variant": "sem", "attack": "robust",
                             "goal": budget("linf", 8 / 255), "example": np.arange(n), "robust": robust,
                             "clean_correct": True, "norm": "linf", "eps": 8 / 255})

    weaker = sem & (rng.random(n) > 0.24)  # loses about 12 points, only on images the SEM keeps
    plan = Plan.from_yaml(project_root() / "params" / "claims.yaml")
    plan.claims = [c for c in plan.claims if c.key == "adaptive_robust"]  # adaptive_robust_4: the same at 4/255
    assert plan.claims[0].panels == [("robust", "linf 8/255")]
    for f, g, verdict in ((weaker, weaker, SUPPORTED), (sem, sem.copy(), EQUIVALENT),  # identical: no discordant image
                          (sem | (rng.random(n) < 0.3), sem, CONTRADICTED)):
        out = tmp_path / verdict
        (out / "06b_adaptive" / "smoke").mkdir(parents=True)
        pd.concat([rows("SEM", sem), rows("F", f), rows("G", g)]).to_csv(
            out / "06b_adaptive" / "smoke" / "tab_robust_rows.csv", index=False)
        ledger, details = claims.ledger(out, "smoke", plan, ceiling=CEIL, n_boot=2000)
        assert ledger.verdict.iloc[0] == verdict, (verdict, details.to_dict("records"))
    r = accuracy_comparison(rows("SEM", sem).assign(robust=sem), "SEM", "SEM", [("robust", "linf 8/255")],
                            margin=0.05, relation=">", value="robust")
    assert r["estimate"] == 0 and r["informative"] == 0
    near = rows("F", np.where(rng.random(n) < 0.02, ~sem, sem))  # 2% of images flipped either way
    r = accuracy_comparison(pd.concat([rows("SEM", sem), near]), "F", "SEM", [("robust", "linf 8/255")], margin=0.05,
                            relation=">", value="robust", n_boot=2000)
    assert r["p"][EQUIVALENT] < 0.01 and abs(r["estimate"]) < 0.03
