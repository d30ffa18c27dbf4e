"""The range-free paired statistic on simulated distortions whose truth is known: the ratio is
recovered, a true ratio of 1 is called supported in about 5% of seeds at most, censoring and
ties lead to "not evaluable" rather than to a verdict, Holm's adjustment by hand."""
import math

import numpy as np
import pytest

from semlib import paired
from semlib.paired import (CONTRADICTED, EQUIVALENT, INCONCLUSIVE, NOT_EVALUABLE, SUPPORTED, Pairs, compare, decide,
                           family, holm)

CEIL = 0.125  # laptop search: eps0 1/255, 6 rounds -> 32/255


def simulate(ratio, n, seed, spread=0.5, ceiling=CEIL, grid=False):
    """Y needs ``ratio`` times X's distortion, per image with log-normal noise; values above the
    ceiling are censored (NaN), as the search reports them."""
    rng = np.random.default_rng(seed)
    base = np.exp(rng.normal(math.log(0.02), 0.6, n))
    d_x = base * np.exp(rng.normal(0, spread / math.sqrt(2), n))
    d_y = base * ratio * np.exp(rng.normal(0, spread / math.sqrt(2), n))
    if grid:  # a binary search reports distortions on a coarse lattice: many exact ties
        d_x, d_y = (np.round(d * 255) / 255 for d in (d_x, d_y))
        d_x, d_y = np.maximum(d_x, 1 / 255), np.maximum(d_y, 1 / 255)
    return tuple(np.where(d > ceiling, np.nan, d) for d in (d_x, d_y))


def verdict_of(d_x, d_y, relation=">", bound=1.25, ceiling=CEIL, **kw):
    r = compare(Pairs.from_distortions(d_x, d_y, ceiling=ceiling), relation, bound, n_boot=400, **kw)
    return decide(r, r["family"]), r


@pytest.mark.parametrize("ratio", [0.6, 1.5, 2.5])
def test_a_known_ratio_is_recovered(ratio):
    d_x, d_y = simulate(ratio, 400, seed=1, spread=0.3)
    v, r = verdict_of(d_x, d_y)
    assert r["lo"] < ratio < r["hi"] and abs(math.log(r["ratio"] / ratio)) < 0.06
    assert v == (SUPPORTED if ratio > 1 else CONTRADICTED)
    assert r["detectable"] < max(ratio, 1 / ratio)  # this n can see it


def test_a_true_ratio_of_one_is_rarely_called_supported():
    """Type I error, simulated: the claim "X more vulnerable" with R = 1 in truth."""
    calls = [verdict_of(*simulate(1.0, 40, seed=s))[0] for s in range(300)]
    assert calls.count(SUPPORTED) / len(calls) <= 0.05  # nominal 2.5%: one tail of a 5% two-sided test
    assert calls.count(CONTRADICTED) / len(calls) <= 0.05


def test_equal_defenses_with_enough_images_are_equivalent_and_tiny_n_is_inconclusive():
    d_x, d_y = simulate(1.0, 600, seed=3, spread=0.3)
    assert verdict_of(d_x, d_y, bound=1.25)[0] == EQUIVALENT
    small = simulate(1.0, 12, seed=3, spread=0.6, ceiling=1.0)  # nothing censored
    v, r = verdict_of(*small, bound=1.25, ceiling=1.0)
    assert v == INCONCLUSIVE and r["n_needed"] > 12 and r["detectable"] > 1.25


def test_non_inferiority_relation():
    """``X <= Y``: X no more vulnerable than Y up to the bound."""
    assert verdict_of(*simulate(0.7, 200, seed=4, spread=0.3), relation="<=")[0] == SUPPORTED
    assert verdict_of(*simulate(2.0, 200, seed=4, spread=0.3), relation="<=")[0] == CONTRADICTED


def test_one_censored_pair_can_decide_a_small_sample():
    """12 images, one never broken by either defense: as the search saw it (both at the
    ceiling, a tie) the two look equivalent; with that pair anywhere in its possible range they
    do not, so the verdict is "not evaluable", not "equivalent"."""
    v, r = verdict_of(*simulate(1.0, 12, seed=3, spread=0.3), bound=1.25)
    assert r["censored_x"] == r["censored_y"] == 1 and v == NOT_EVALUABLE and r["censoring_decides"]


def test_censoring_that_dominates_is_not_evaluable_and_never_a_false_verdict():
    """Half the images never broken by either defense: the ratio of those is unknown (anything
    between ceiling / d_max and d_max / ceiling), so no verdict may rest on them."""
    rng = np.random.default_rng(5)
    d = np.exp(rng.normal(math.log(0.02), 0.3, 40))
    d_x = np.r_[d, np.full(40, np.nan)]
    d_y = np.r_[d * 1.02, np.full(40, np.nan)]
    v, r = verdict_of(d_x, d_y)
    assert r["censored_x"] == r["censored_y"] == 40 and v in (NOT_EVALUABLE, INCONCLUSIVE) and v != EQUIVALENT
    assert r["censoring_decides"]


def test_censoring_in_one_defense_only_counts_in_the_known_direction():
    """Y never broken on a third of the images, X always broken: those pairs say X is the more
    vulnerable whatever Y's true distortion, so the claim X > Y is supported."""
    rng = np.random.default_rng(6)
    d_x = np.exp(rng.normal(math.log(0.01), 0.3, 60))
    d_y = np.where(np.arange(60) % 3 == 0, np.nan, d_x * np.exp(rng.normal(0.2, 0.3, 60)))
    assert verdict_of(d_x, d_y)[0] == SUPPORTED
    assert verdict_of(d_y, d_x)[0] == CONTRADICTED


def test_ties_leave_too_few_informative_pairs():
    """4 untied pairs cannot tell a direction; 26 ties with 4 small differences still bound the
    ratio (equivalent); 4 large ones do not, and then nothing can be said."""
    d = np.full(30, 4 / 255)
    d_y = d.copy()
    d_y[:4] = 5 / 255  # 4 untied pairs, all in one direction, 25% apart: R = 1.03
    v, r = verdict_of(d, d_y)
    assert r["informative"] == 4 and v == EQUIVALENT and 1 < r["hi"] < 1.25
    d_y[:4] = 30 / 255  # 7.5x apart: R = 1.31, beyond the bound, yet 4 pairs give no direction
    v, r = verdict_of(d, d_y)
    assert r["informative"] == 4 and v == NOT_EVALUABLE and r["p"][SUPPORTED] > 0.05
    assert math.isnan(verdict_of(d, d)[1]["detectable"])  # all tied: no spread, no power figure
    grid = simulate(1.6, 150, seed=7, spread=0.3, grid=True)  # a lattice with ties still decides
    assert verdict_of(*grid)[0] == SUPPORTED


def test_equivalence_agrees_with_the_interval_shown():
    """Equivalent exactly when the (1 - 2 alpha) bootstrap interval of R lies inside [1/b, b]:
    the displayed estimand, not a different one."""
    for seed in range(12):
        d_x, d_y = simulate(1.08, 120, seed=seed, spread=0.4, ceiling=1.0)
        pairs = Pairs.from_distortions(d_x, d_y, ceiling=1.0)
        r = compare(pairs, ">", 1.25, n_boot=999, seed=seed)
        lo, hi = np.exp(np.quantile(paired.bootstrap_means(pairs.log_ratios("seen"), 999, seed), [0.05, 0.95]))
        inside = 1 / 1.25 < lo and hi < 1.25
        assert (r["p"][EQUIVALENT] < 0.05) == inside or min(abs(lo - 0.8), abs(hi - 1.25)) < 0.005


def test_clean_correctness_decides_which_cells_count():
    """Targeted panels: distortion 0 on a correctly classified image is a success at eps 0 (kept,
    at the floor), a positive distortion on a misclassified image is a clean error (left out),
    and a missing cell is neither censored nor counted."""
    d_x = np.array([[0.02, 0.0], [0.03, 0.05], [0.01, np.nan]])
    d_y = np.array([[0.04, 0.02], [0.03, 0.06], [0.02, np.nan]])
    cx = np.array([[1, 1], [1, 0], [1, np.nan]])  # image 1 panel 2: X errs; image 2 panel 2: missing
    cy = np.ones((3, 2))
    p = Pairs.from_distortions(d_x, d_y, ceiling=CEIL, correct_x=cx, correct_y=cy)
    assert p.n == 3 and p.valid.tolist() == [[True, True], [True, False], [True, False]]
    assert p.censored("x") == p.censored("y") == 0
    assert p.d_x[0, 1] == pytest.approx(CEIL * paired.FLOOR)
    assert p.log_ratios("seen")[0] == pytest.approx((math.log(2) + math.log(0.02 / (CEIL * paired.FLOOR))) / 2)
    with pytest.raises(ValueError, match="both defenses or for neither"):
        Pairs.from_distortions(d_x, d_y, ceiling=CEIL, correct_x=cx)


def test_censoring_decides_on_adjusted_p_values():
    """Not evaluable when a hypothesis is significant as the search saw it but not at both
    ends, both after Holm: a seen p that is only significant unadjusted decides nothing."""
    r = {"informative": 20, "relation": ">", "p": {SUPPORTED: 0.4, CONTRADICTED: 0.6}}
    worst = {"direction": 0.8, EQUIVALENT: 0.5}
    assert decide(r, worst, 0.05, {"direction": 0.01, EQUIVALENT: 0.5}) == NOT_EVALUABLE
    assert decide(r, worst, 0.05, {"direction": 0.2, EQUIVALENT: 0.5}) == INCONCLUSIVE


def test_clean_failures_are_left_out_and_bad_input_is_one_line():
    p = Pairs.from_distortions([0.0, 0.01, 0.02], [0.03, 0.0, 0.04], ceiling=CEIL)
    assert p.n == 1
    with pytest.raises(ValueError, match="exceeds the search ceiling"):
        Pairs.from_distortions([0.2], [0.1], ceiling=CEIL)
    with pytest.raises(ValueError, match="one shape"):
        Pairs.from_distortions([0.1, 0.2], [0.1], ceiling=CEIL)
    with pytest.raises(ValueError, match="bound is a ratio > 1"):
        paired.tests(np.zeros(3), ">", 0.9)
    with pytest.raises(ValueError, match="relation must be one of"):
        paired.tests(np.zeros(3), "<", 1.25)


def test_panels_of_an_image_count_once():
    """Six panels of one image are one observation: the per-image mean log ratio is tested, and a
    panel with a clean failure is left out of its image's mean."""
    d_x, d_y = simulate(1.4, 30, seed=8, spread=0.3)
    one = compare(Pairs.from_distortions(d_x, d_y, ceiling=CEIL), ">", 1.25, n_boot=200)
    six = compare(Pairs.from_distortions(np.repeat(d_x[:, None], 6, 1), np.repeat(d_y[:, None], 6, 1), ceiling=CEIL),
                  ">", 1.25, n_boot=200)
    assert six["n"] == one["n"] == 30 and six["p"] == one["p"] and six["ratio"] == pytest.approx(one["ratio"])
    d_x2 = np.c_[d_x, np.zeros(30)]  # a second panel whose clean image X already fails
    d_y2 = np.c_[d_y, np.full(30, 0.05)]
    masked = compare(Pairs.from_distortions(d_x2, d_y2, ceiling=CEIL), ">", 1.25, n_boot=200)
    assert masked["ratio"] == pytest.approx(one["ratio"]) and masked["n"] == 30


def test_the_family_holds_one_direction_test_and_the_equivalence_test():
    p = {SUPPORTED: 0.01, CONTRADICTED: 0.99, EQUIVALENT: 0.3}
    assert family(p) == {"direction": 0.02, EQUIVALENT: 0.3}
    assert family({SUPPORTED: 0.7, CONTRADICTED: 0.6}) == {"direction": 1.0}
    r = {"informative": 10, "p": p, "censoring_decides": False}
    assert decide(r, {"direction": 0.04, EQUIVALENT: 0.3}) == SUPPORTED
    assert decide(r, {"direction": 0.06, EQUIVALENT: 0.01}) == EQUIVALENT
    assert decide({**r, "p": {SUPPORTED: 0.99, CONTRADICTED: 0.01}}, {"direction": 0.02}) == CONTRADICTED
    assert decide(r, {"direction": 0.5}) == INCONCLUSIVE


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03, 0.2]) == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert holm([0.5, 0.5]) == [1.0, 1.0] and holm([]) == []


def test_error_equivalence_needs_enough_images_and_holds_its_level_at_the_margin():
    """Paired errors (robust or clean, in [0, 1] per image): identical outcomes on 4 images are
    no evidence of equivalence (exact bound 0.95^4 = 0.81; the bootstrap alone sees p = 0), on
    400 they are; a true gap of exactly the margin, in binary outcomes on 40 images (about 2
    differ), is called equivalent (or non-inferior) in at most ~5% of simulated samples (truth
    known; the bootstrap alone: 57 of 400); a clear gain on 100 images keeps its power."""
    same4 = paired.error_difference(np.zeros(4), np.zeros(4), ">", 0.05, n_boot=400)
    assert same4["p"][EQUIVALENT] == pytest.approx(0.95 ** 4) and same4["estimate"] == 0
    assert paired.error_difference(np.ones(4), np.ones(4), "<=", 0.05, n_boot=400)["p"][SUPPORTED] > 0.8
    assert paired.error_difference(np.zeros(400), np.zeros(400), ">", 0.05, n_boot=400)["p"][EQUIVALENT] < 0.01
    rng = np.random.default_rng(3)
    hits = {">": 0, "<=": 0}
    runs = 400
    for _ in range(runs):
        d = rng.random(40) < 0.05  # x errs on ~5% more images than y: a difference of exactly the margin
        err_y = (rng.random(40) < 0.3) & ~d
        err_x = err_y | d
        for rel, claim in ((">", EQUIVALENT), ("<=", SUPPORTED)):
            hits[rel] += paired.error_difference(err_x, err_y, rel, 0.05, n_boot=200, seed=int(rng.integers(1 << 30))
                                                 )["p"][claim] < 0.05
    assert max(hits.values()) <= 0.05 * runs + 3 * math.sqrt(0.05 * 0.95 * runs), hits
    err_y = rng.random(100) < 0.3  # y errs on ~30%, x on ~12% of the same images: non-inferior by far
    err_x = err_y & (rng.random(100) < 0.4)
    assert paired.error_difference(err_x, err_y, "<=", 0.05, n_boot=400)["p"][SUPPORTED] < 0.01
