"""The evaluation checklist (semlib.checklist) on synthetic outputs whose truth is known:
attacks that are stronger or weaker by construction, a defense with unbroken images, a
convergence sweep that rises, and an unbounded budget."""
import numpy as np
import pandas as pd
import pytest

from semlib import checklist

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
    budget = t.check.isin(["budget_converged", "plateau"])  # these synthetic rows carry no budgets: own tests below
    assert set(t[~budget].status) == {"pass", "fail"} and (t.evidence.str.len() > 10).all()
    assert t[budget].status.tolist() == ["no evidence"] * 2


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


def test_the_plateau_is_each_axis_doubled_at_the_strongest_budget(tmp_path):
    """``plateau``: at S x E, doubling the iterations and doubling the EOT samples must each leave
    robust accuracy unchanged (< 1 point); one image lost on either axis fails; a deterministic
    model has only the iterations; without plateau rows the check is "no evidence"."""
    def at(label, sweep, steps, eot, robust, n=50):  # the first ``robust`` images robust
        return pd.DataFrame({"example": np.arange(n), "label": label, "sweep": sweep, "steps": steps, "eot": eot,
                             "value": steps if sweep == "plateau_steps" else eot, "robust": np.arange(n) < robust})
    base = {"SEM": 11, "F": 7, "H": 4}
    rows = [at(m, "plateau_steps", 800, 32, k) for m, k in base.items()] + [at("SEM", "plateau_steps", 1600, 32, 11),
            at("F", "plateau_steps", 1600, 32, 7), at("H", "plateau_steps", 1600, 32, 4)]
    rows += [at(m, "plateau_eot", 800, 32, base[m]) for m in ("SEM", "F")]
    rows += [at("SEM", "plateau_eot", 800, 64, 10), at("F", "plateau_eot", 800, 64, 7)]
    (tmp_path / "06b_adaptive" / "p").mkdir(parents=True)
    pd.concat(rows).to_csv(tmp_path / "06b_adaptive" / "p" / "tab_convergence_rows.csv", index=False)
    t = checklist.run(tmp_path, "p", ceiling=CEIL).set_index(["check", "defense"])
    sem, f, h = (t.loc[("plateau", m)] for m in ("SEM", "F", "H"))
    assert sem.status == "fail" and sem.estimate == pytest.approx(2.0) and sem.n == 50  # one image of 50 at 800 x 64
    assert "800 x 32 -> 800 x 64: 11 -> 10 of 50 robust (0 only at the larger, 1 only at the smaller)" in sem.evidence
    assert "800 x 32 -> 1600 x 32: 11 -> 11 of 50" in sem.evidence
    assert f.status == "pass" and f.estimate == 0 and "deterministic" not in f.evidence
    assert h.status == "pass" and "deterministic" in h.evidence and "x 64" not in h.evidence
    # one image swapped (robust only at the larger on one, only at the smaller on another): the net move counts
    swap = at("F", "plateau_eot", 800, 64, 8).assign(robust=lambda d: d.robust & (d.example != 0))
    pd.concat(rows[:-1] + [swap]).to_csv(tmp_path / "06b_adaptive" / "p" / "tab_convergence_rows.csv", index=False)
    f = checklist.run(tmp_path, "p", ceiling=CEIL).set_index(["check", "defense"]).loc[("plateau", "F")]
    assert f.status == "pass" and "(1 only at the larger, 1 only at the smaller)" in f.evidence
    assert checklist.run(tmp_path / "none", "p", ceiling=CEIL).set_index("check").loc["plateau", "status"] == "no evidence"
