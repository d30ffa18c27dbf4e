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
# two overlap, the paired count does not); SEM's steps fall (more steps, fewer robust)
SWEEPS = [("SEM", "steps", 10, range(0, 100)), ("SEM", "steps", 20, range(0, 80)), ("SEM", "steps", 40, range(0, 79)),
          ("SEM", "eot", 1, range(0, 20)), ("SEM", "eot", 2, range(0, 80)), ("SEM", "eot", 4, range(0, 90)),
          ("F", "steps", 10, range(0, 50)), ("F", "steps", 20, range(1, 51)),
          ("F", "eot", 1, range(0, 50)), ("F", "eot", 2, range(0, 62))]


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
    f_eot = t[(t.check == "more_eot_never_weaken") & (t.defense == "F")].iloc[0]
    assert f_eot.n == N_CONV and "12 images robust only at 2, 0 only at 1" in f_eot.evidence
    # Holm over 8 pairs (consecutive ones, and first vs last of the 3-value sweeps): F's one-sided
    # sign-test p 0.5**12 is the third smallest; the estimate is the largest net rise in points
    assert f_eot.estimate == pytest.approx(6.0) and f"Holm p (larger budget weaker) {6 * 0.5 ** 12:.3g}" in f_eot.evidence
    f_steps = t[(t.check == "more_steps_never_weaken") & (t.defense == "F")].iloc[0]
    assert f_steps.estimate == 0 and f_steps.evidence.endswith("weaker) 1")  # 1 rise, 1 fall: p 0.75, x4 by Holm
    assert by["unbounded_succeeds", "SEM"] == ["pass"] and by["unbounded_succeeds", "F"] == ["fail"]
    ratio = t[(t.check == "whitebox_vs_transfer")].estimate.tolist()
    assert ratio == pytest.approx([2.0, 0.5], rel=1e-6)
    assert set(t.status) == {"pass", "fail"} and (t.evidence.str.len() > 10).all()


def test_missing_outputs_are_no_evidence(tmp_path):
    t = checklist.run(tmp_path, "p", ceiling=CEIL)
    assert set(t.status) == {"no evidence"} and t.evidence.str.len().min() > 10


def _convergence_only(tmp_path, sweeps):
    (tmp_path / "06b_adaptive" / "p").mkdir(parents=True)
    pd.concat([_sweep(*c) for c in sweeps], ignore_index=True).to_csv(
        tmp_path / "06b_adaptive" / "p" / "tab_convergence_rows.csv", index=False)
    t = checklist.run(tmp_path, "p", ceiling=CEIL)
    return t[t.check.isin(["more_steps_never_weaken", "more_eot_never_weaken", "converged"])].set_index(
        ["check", "defense"])


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
    assert ("converged", "SEM") not in t.index and ("converged", "F") not in t.index
    # G: the doubling of steps moves nothing; the doubling of EOT swaps one image (0 points net)
    g = t.loc["converged", "G"]
    assert g.status == "pass" and g.estimate == 0 and g.n == N_CONV
    assert t.loc["more_eot_never_weaken", "G"].status == "pass"


def test_images_missing_at_a_sweep_value_are_left_out_and_said(tmp_path):
    rows = pd.concat([_sweep("SEM", "steps", 10, range(0, 20)), _sweep("SEM", "steps", 20, range(0, 20))])
    rows = rows[~((rows.value == 20) & (rows.example < 5))]  # 5 images lack the second value
    (tmp_path / "06b_adaptive" / "p").mkdir(parents=True)
    rows.to_csv(tmp_path / "06b_adaptive" / "p" / "tab_convergence_rows.csv", index=False)
    t = checklist.run(tmp_path, "p", ceiling=CEIL).set_index(["check", "defense"])
    row = t.loc["more_steps_never_weaken", "SEM"]
    assert row.n == N_CONV - 5 and "5 images missing at some value left out" in row.evidence
