"""The evaluation checklist (semlib.checklist) on synthetic outputs whose truth is known:
attacks that are stronger or weaker by construction, a defense with unbroken images, a
convergence sweep that rises, and an unbounded budget."""
import numpy as np
import pandas as pd
import pytest

from semlib import checklist
from semlib.claims import Claim, Plan

CEIL = 0.5
RATIO = {  # distortion multiplier of each curve against A's (a curve needing more is weaker)
    "A": 1.0, "C": 2.0, "D": 0.5, "F": 1.0, "G": 1.0, "H": 1.0, "I": 1.0, "E": 2.0, "J": 0.5}


def _rows(scenarios, attacks, goals, base, n=60, broken=True, extra=None):
    out = []
    for s in scenarios:
        for a in attacks:
            for g in goals:
                d = base * RATIO.get(s, 1.0) * (1.5 if g == "targeted" else 1.0) * (1.0 if a != "fgsm" else 1.6)
                if extra is not None and s in extra:
                    d = extra[s](d.copy())
                out.append(pd.DataFrame({"example": np.arange(n), "distortion": d, "clean_correct": True,
                                         "label": s, "scenario": s, "attack": a, "goal": g, "variant": "sem"}))
    return pd.concat(out, ignore_index=True)


N_CONV = 200
# (label, sweep, value, images robust): SEM weakens with more EOT samples (10% -> 40%: 60 images
# robust only at 2); F swaps one image between 10 and 20 steps (no evidence of weakening) but
# leaves 12 more images robust at 2 EOT samples than at 1 (31% vs 25%: the 95% intervals of the
# two overlap, the paired count does not); SEM's steps fall (more steps, fewer robust); both raised
# together (joint, value = steps x EOT), SEM falls then stays and F stays
SWEEPS = [("SEM", "steps", 10, range(0, 100)), ("SEM", "steps", 20, range(0, 80)), ("SEM", "steps", 40, range(0, 79)),
          ("SEM", "eot", 1, range(0, 20)), ("SEM", "eot", 2, range(0, 80)), ("SEM", "eot", 4, range(0, 90)),
          ("SEM", "joint", 80, range(0, 80)), ("SEM", "joint", 1280, range(0, 70)), ("SEM", "joint", 12800, range(0, 70)),
          ("F", "steps", 10, range(0, 50)), ("F", "steps", 20, range(1, 51)),
          ("F", "eot", 1, range(0, 50)), ("F", "eot", 2, range(0, 62)),
          ("F", "joint", 80, range(0, 50)), ("F", "joint", 12800, range(0, 50))]


def _sweep(label, sweep, value, robust):
    return pd.DataFrame({"example": np.arange(N_CONV), "label": label, "sweep": sweep, "value": value,
                         "clean_correct": True, "robust": np.isin(np.arange(N_CONV), list(robust))})


@pytest.fixture()
def outputs(tmp_path):
    rng = np.random.default_rng(0)
    base = np.exp(rng.normal(np.log(0.02), 0.4, 60))
    # F: six images never broken by any white-box attack (censored at the ceiling)
    unbroken = {"F": lambda d: np.where(np.arange(60) < 6, np.nan, d)}

    def save(nb, name, df):
        (tmp_path / nb / "p").mkdir(parents=True, exist_ok=True)
        df.to_csv(tmp_path / nb / "p" / f"tab_{name}.csv", index=False)

    save("03_whitebox_transfer", "distortions", _rows("ACDFGHI", ["bim", "mim", "pgd"], ["untargeted", "targeted"],
                                                      base, extra=unbroken))
    save("04_query_blackbox", "distortions", _rows("EJ", ["nes", "spsa"], ["untargeted", "targeted"], base))
    save("06b_adaptive", "distortions", _rows("AFG", ["bim", "fgsm"], ["untargeted"], base))
    save("06b_adaptive", "convergence_rows", pd.concat([_sweep(*c) for c in SWEEPS], ignore_index=True))
    save("06b_adaptive", "robust_rows", pd.DataFrame({"label": ["SEM"] * 5 + ["F"] * 5, "norm": "linf", "eps": 1.0,
                                                      "robust": [False] * 5 + [False] * 4 + [True]}))
    return tmp_path


def test_checks_find_what_was_built_in(outputs):
    t = checklist.run(outputs, "p", ceiling=CEIL)
    by = t.groupby(["check", "defense"]).status.apply(list).to_dict()
    assert by["whitebox_vs_transfer", "SEM"] == ["pass", "fail"]  # C needs 2x A; D only half: A is weaker
    assert by["iterative_vs_single_step", "SEM"] == ["pass"] and by["iterative_vs_single_step", "F"] == ["pass"]
    assert all(by["targeted_implies_untargeted", d] == ["pass"] for d in ("SEM", "F", "G", "H", "I"))
    assert by["gradient_free_not_stronger", "SEM"] == ["pass"] and by["gradient_free_not_stronger", "F"] == ["fail"]
    assert by["asr_reaches_one", "SEM"] == ["pass"] and by["asr_reaches_one", "F"] == ["fail"]
    f_row = t[(t.check == "asr_reaches_one") & (t.defense == "F")].iloc[0]
    assert f_row.estimate == 6 and f_row.n == 60
    assert by["more_steps_never_weaken", "SEM"] == ["pass"] and by["more_eot_never_weaken", "SEM"] == ["fail"]
    assert by["converged", "SEM"] == ["fail"]  # the last EOT doubling moved it 5 points
    assert by["more_steps_never_weaken", "F"] == ["pass"] and by["more_eot_never_weaken", "F"] == ["fail"]
    assert by["converged", "F"] == ["fail"]  # 25 -> 31% at the doubling of EOT samples
    assert by["more_budget_never_weaken", "SEM"] == ["pass"] and by["more_budget_never_weaken", "F"] == ["pass"]
    sem_conv = t[(t.check == "converged") & (t.defense == "SEM")].iloc[0]
    assert "joint 1280 -> 12800: +0.0 points" in sem_conv.evidence and "eot 2 -> 4: +5.0 points" in sem_conv.evidence
    f_eot = t[(t.check == "more_eot_never_weaken") & (t.defense == "F")].iloc[0]
    assert f_eot.n == N_CONV and "12 images robust only at 2, 0 only at 1" in f_eot.evidence
    # Holm over 12 pairs (consecutive ones, and first vs last of the 3-value sweeps): F's one-sided
    # sign-test p 0.5**12 is the third smallest; the estimate is the largest net rise in points
    assert f_eot.estimate == pytest.approx(6.0) and f"Holm p (larger budget weaker) {10 * 0.5 ** 12:.3g}" in f_eot.evidence
    f_steps = t[(t.check == "more_steps_never_weaken") & (t.defense == "F")].iloc[0]
    assert f_steps.estimate == 0 and f_steps.evidence.endswith("weaker) 1")  # 1 rise, 1 fall: p 0.75, x4 by Holm
    assert by["unbounded_succeeds", "SEM"] == ["pass"] and by["unbounded_succeeds", "F"] == ["fail"]
    ratio = t[(t.check == "whitebox_vs_transfer")].estimate.tolist()
    assert ratio == pytest.approx([2.0, 0.5], rel=1e-6)
    budget = t.check == "budget_converged"  # these synthetic rows carry no budgets: its own test below
    assert set(t[~budget].status) == {"pass", "fail"} and (t.evidence.str.len() > 10).all()
    assert t[budget].status.tolist() == ["no evidence"]


def test_missing_outputs_are_no_evidence(tmp_path):
    t = checklist.run(tmp_path, "p", ceiling=CEIL)
    assert set(t.status) == {"no evidence"} and t.evidence.str.len().min() > 10


def _convergence_only(tmp_path, sweeps):
    (tmp_path / "06b_adaptive" / "p").mkdir(parents=True)
    pd.concat([_sweep(*c) for c in sweeps], ignore_index=True).to_csv(
        tmp_path / "06b_adaptive" / "p" / "tab_convergence_rows.csv", index=False)
    t = checklist.run(tmp_path, "p", ceiling=CEIL)
    return t[t.check.isin(["more_steps_never_weaken", "more_eot_never_weaken", "more_budget_never_weaken",
                           "converged"])].set_index(["check", "defense"])


def test_a_rise_spread_over_many_steps_fails(tmp_path):
    """4 more images robust at each of 4 doublings (no consecutive pair is significant on its
    own: p 0.0625), 16 from the first to the last: caught by the first-vs-last pair."""
    t = _convergence_only(tmp_path, [("SEM", "steps", v, range(0, 40 + 4 * i)) for i, v in enumerate([10, 20, 40, 80, 200])])
    row = t.loc["more_steps_never_weaken", "SEM"]
    assert row.status == "fail" and row.estimate == pytest.approx(100 * 16 / N_CONV)
    assert "10 -> 200: 16 images robust only at 200, 0 only at 10" in row.evidence


def test_convergence_without_anything_to_compare_is_no_evidence(tmp_path):
    t = _convergence_only(tmp_path, [("SEM", "steps", 10, range(0, 50)),  # a single value
                                     ("F", "steps", 10, []), ("F", "steps", 20, []),  # nothing robust anywhere
                                     ("G", "steps", 20, range(0, 30)), ("G", "steps", 40, range(0, 30)),
                                     ("G", "eot", 4, range(0, 30)), ("G", "eot", 8, range(1, 31))])
    assert t.loc["more_steps_never_weaken", "SEM"].status == "no evidence"
    assert t.loc["more_steps_never_weaken", "F"].status == "no evidence"
    for label in ("SEM", "F"):  # said, not left out: the ledger's gate reads it as not converged
        assert t.loc["converged", label].status == "no evidence" and "no sweep" in t.loc["converged", label].evidence
    # G: the doubling of steps moves nothing; the doubling of EOT swaps one image (0 points net)
    g = t.loc["converged", "G"]
    assert g.status == "pass" and g.estimate == 0 and g.n == N_CONV
    assert t.loc["more_eot_never_weaken", "G"].status == "pass"


def test_both_raised_together_is_a_sweep_of_its_own(tmp_path):
    """A joint sweep (steps and EOT raised together) that leaves more images robust at its larger
    budget fails its own check; where both axes stand still, its last step alone decides
    ``converged``; without a joint sweep the check is "no evidence", not a pass."""
    axes = [("G", "steps", 20, range(0, 30)), ("G", "steps", 40, range(0, 30)),
            ("G", "eot", 4, range(0, 30)), ("G", "eot", 8, range(0, 30))]
    t = _convergence_only(tmp_path / "rise", axes + [("G", "joint", 80, range(0, 30)), ("G", "joint", 1280, range(0, 44))])
    row = t.loc["more_budget_never_weaken", "G"]
    assert row.status == "fail" and row.estimate == pytest.approx(7.0)
    assert "80 -> 1280: 14 images robust only at 1280, 0 only at 80" in row.evidence
    assert t.loc["converged", "G"].status == "fail" and t.loc["converged", "G"].estimate == pytest.approx(7.0)
    t = _convergence_only(tmp_path / "fall", axes + [("G", "joint", 80, range(0, 30)), ("G", "joint", 1280, range(0, 26))])
    assert t.loc["more_budget_never_weaken", "G"].status == "pass"
    assert t.loc["converged", "G"].status == "fail" and t.loc["converged", "G"].estimate == pytest.approx(2.0)
    t = _convergence_only(tmp_path / "none", axes)
    assert t.loc["more_budget_never_weaken", "all"].status == "no evidence"
    assert t.loc["converged", "G"].status == "pass"


def test_images_missing_at_a_sweep_value_are_left_out_and_said(tmp_path):
    rows = pd.concat([_sweep("SEM", "steps", 10, range(0, 20)), _sweep("SEM", "steps", 20, range(0, 20))])
    rows = rows[~((rows.value == 20) & (rows.example < 5))]  # 5 images lack the second value
    (tmp_path / "06b_adaptive" / "p").mkdir(parents=True)
    rows.to_csv(tmp_path / "06b_adaptive" / "p" / "tab_convergence_rows.csv", index=False)
    t = checklist.run(tmp_path, "p", ceiling=CEIL).set_index(["check", "defense"])
    row = t.loc["more_steps_never_weaken", "SEM"]
    assert row.n == N_CONV - 5 and "5 images missing at some value left out" in row.evidence


def test_qualify_keeps_a_verdict_only_where_the_named_attacks_converged():
    plan = Plan([Claim("needs", "t", "f", "06b_adaptive", [("F", ">", "SEM")], [("apgd", "untargeted")],
                       converged=["SEM", "F"]),
                 Claim("free", "t", "f", "03_whitebox_transfer", [("H", ">", "I")], [("bim", "untargeted")]),
                 Claim("absent", "t", "f", "06b_adaptive", [("G", ">", "SEM")], [("apgd", "untargeted")],
                       converged=["SEM", "G"])])
    ledger = pd.DataFrame({"claim": ["needs", "free", "absent"], "verdict": ["supported", "supported", "not computed"],
                           "comparisons": ["F > SEM: ... -> supported", "H > I: ...", ""], "notes": ["", "kept", ""]})
    checks = pd.DataFrame({"check": ["converged"] * 3 + ["budget_converged"] * 3 + ["asr_reaches_one"],
                           "defense": ["SEM", "F", "G"] * 2 + ["SEM"],
                           "status": ["fail", "pass", "pass", "pass", "pass", "pass", "fail"]})
    q = checklist.qualify(ledger, plan, checks).set_index("claim")
    assert q.at["needs", "verdict"] == "not evaluable"
    assert "SEM (converged fail)" in q.at["needs", "notes"] and "F (" not in q.at["needs", "notes"]
    assert "say supported" in q.at["needs", "notes"]  # the budget's own verdict stays readable
    assert q.at["needs", "comparisons"] == "attack not converged on SEM; at the budget run: F > SEM: ... -> supported"
    assert (q.at["free", "verdict"], q.at["free", "notes"]) == ("supported", "kept")
    details = pd.DataFrame({"claim": ["needs", "free"], "verdict": ["supported", "supported"]})
    gated = checklist.qualify_comparisons(details, plan, checks)  # the ledger figure shows the gate too
    assert list(gated.verdict) == ["not evaluable", "supported"] and list(gated.budget_verdict) == ["supported"] * 2
    assert q.at["absent", "verdict"] == "not computed"  # nothing to qualify
    assert list(ledger.verdict) == ["supported", "supported", "not computed"]  # the input is not changed
    passed = checks.assign(status="pass")
    assert checklist.qualify(ledger, plan, passed).equals(ledger)  # converged everywhere: nothing changes
    no_sweep = checks[checks.defense != "F"]  # F's convergence never measured: no evidence, not a pass
    assert "F (no evidence)" in checklist.qualify(ledger, plan, no_sweep).set_index("claim").at["needs", "notes"]
    table_short = passed.assign(status=np.where(passed.check == "budget_converged", "fail", "pass"))
    q = checklist.qualify(ledger, plan, table_short).set_index("claim")  # the sweep converged, the table's budget not
    assert q.at["needs", "verdict"] == "not evaluable" and "F (budget_converged fail)" in q.at["needs", "notes"]


def test_the_tables_budget_is_judged_against_the_sweeps_largest(tmp_path):
    """A table run at 20 x 4 where the sweep's largest budgets leave fewer images robust fails;
    one equal to them passes; a table budget that is no point of the sweep is no evidence."""
    def sweep(label, name, value, steps, eot, robust):
        return pd.DataFrame({"example": np.arange(50), "label": label, "sweep": name, "value": value,
                             "steps": steps, "eot": eot, "robust": np.arange(50) < robust})
    rows = pd.concat([sweep("SEM", "steps", 20, 20, 4, 21), sweep("SEM", "steps", 200, 200, 4, 16),
                      sweep("SEM", "eot", 4, 20, 4, 21), sweep("SEM", "eot", 32, 20, 32, 15),
                      sweep("F", "steps", 20, 20, 4, 9), sweep("F", "steps", 200, 200, 4, 9),
                      sweep("F", "eot", 4, 20, 4, 9), sweep("F", "eot", 32, 20, 32, 9),
                      sweep("G", "steps", 10, 10, 4, 9), sweep("G", "steps", 200, 200, 4, 9)], ignore_index=True)
    table = pd.DataFrame({"label": ["SEM", "F", "G"], "steps": 20, "eot": 4, "robust": False, "norm": "linf", "eps": 0.1})
    (tmp_path / "06b_adaptive" / "p").mkdir(parents=True)
    rows.to_csv(tmp_path / "06b_adaptive" / "p" / "tab_convergence_rows.csv", index=False)
    table.to_csv(tmp_path / "06b_adaptive" / "p" / "tab_robust_rows.csv", index=False)
    t = checklist.run(tmp_path, "p", ceiling=CEIL).set_index(["check", "defense"])
    sem = t.loc[("budget_converged", "SEM")]
    assert sem.status == "fail" and sem.estimate == pytest.approx(12.0)  # 42% -> 30% at 32 samples
    assert "5 images robust only at the table's budget, 0 only at the largest" in sem.evidence
    assert t.loc[("budget_converged", "F"), "status"] == "pass"
    assert t.loc[("budget_converged", "G"), "status"] == "no evidence"  # 20 x 4 is no point of G's sweep
    # both raised together count too: the joint sweep's largest point leaves fewer images robust still
    joint = pd.concat([rows, sweep("SEM", "joint", 80, 20, 4, 21), sweep("SEM", "joint", 12800, 400, 32, 13)])
    joint.to_csv(tmp_path / "06b_adaptive" / "p" / "tab_convergence_rows.csv", index=False)
    sem = checklist.run(tmp_path, "p", ceiling=CEIL).set_index(["check", "defense"]).loc[("budget_converged", "SEM")]
    assert sem.status == "fail" and sem.estimate == pytest.approx(16.0)  # 42% -> 26% at 400 x 32
    assert "joint 400 x 32: 42.0 -> 26.0 %" in sem.evidence
