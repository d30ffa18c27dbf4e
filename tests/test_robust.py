"""Robust accuracy at a fixed budget (semlib.robust): analytic cases on a linear model, the
strongest attack per image, a defense no attack can move, and the table's intervals."""
import pandas as pd
import pytest
import torch
from torch import nn

from semlib.ensemble import StochasticEnsemble
from semlib.judge import JudgeConfig
from semlib.robust import RobustConfig, evaluate, surrogate, table, worst_case
from semlib.smoothing import NoisyClassifier


def _linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).eval()
    x = 0.25 + 0.5 * torch.rand(12, 3, 32, 32)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:3] = (y[:3] + 1) % 10  # three clean errors
    return model, x, y


def _margin_linf(model, x, y):
    """Exact Linf distance of each image to its nearest wrong-class region of a linear model
    (box constraints ignored: the images lie far inside [0, 1])."""
    w, b = model[1].weight, model[1].bias
    z = model(x)
    gaps = []
    for j in range(10):
        dw = (w[y] - w[j]).abs().sum(1)
        gaps.append(torch.where(torch.tensor(j) == y, torch.full_like(dw, float("inf")),
                                (z.gather(1, y[:, None]).squeeze(1) - z[:, j]) / dw))
    return torch.stack(gaps, 1).amin(1)


def test_linear_model_is_broken_exactly_beyond_its_margin():
    model, x, y = _linear()
    with torch.no_grad():
        margin = _margin_linf(model, x, y)
    eps = float(margin[3:].median())
    rows = evaluate(model, model, x, y, RobustConfig(eps=eps, steps=20), generator=torch.Generator().manual_seed(0))
    assert rows.clean_correct.tolist() == [False] * 3 + [True] * 9
    expect = (margin >= eps * 1.02).tolist()  # the attack reaches the linear optimum of a vertex
    for i in range(3, 12):
        if margin[i] > eps * 1.02 or margin[i] < eps * 0.98:  # clear of the boundary
            assert rows.robust[i] == expect[i], (i, float(margin[i]), eps)
    assert not rows.robust[:3].any()  # a clean error is never robust
    zero = evaluate(model, model, x, y, RobustConfig(eps=0.0, steps=5), generator=torch.Generator().manual_seed(0))
    assert zero.robust.tolist() == zero.clean_correct.tolist()


def test_each_attack_sees_only_the_images_still_robust():
    model, x, y = _linear()
    cfg = RobustConfig(eps=0.5, steps=10, attacks=("apgd-ce", "apgd-dlr-t", "apgd-vote"))
    rows = evaluate(model, model, x, y, cfg, generator=torch.Generator().manual_seed(0))
    assert not rows.robust.any()
    assert set(rows.broken_by[3:]) == {"apgd-ce"} and set(rows.broken_by[:3]) == {""}
    # broken at the first judged iterate or soon after: never the later attacks' passes
    assert (rows.gradients[3:] <= 10).all() and (rows.gradients[:3] == 0).all()


class Coin(nn.Module):
    """Votes the label (written in the image: pixel value label / 10) with probability p
    whatever else the input is: an eps of 8/255 cannot move it, so the robust fraction is the
    judge's own (the MC rule with n votes and threshold alpha)."""

    deterministic = False

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x, generator=None):
        lab = (x[:, 0, 0, 0].detach() * 10).round().long()
        keep = torch.rand(len(x), generator=generator) < self.p
        cls = torch.where(keep, lab, (lab + 1) % 10)
        return nn.functional.one_hot(cls, 10).float() * 5 + 0 * x.flatten(1).sum(1, keepdim=True)


def test_an_immovable_defense_keeps_what_the_judge_gives():
    from scipy.stats import binom

    y = torch.arange(200) % 10
    x = (y / 10).view(-1, 1, 1, 1).expand(200, 3, 32, 32).clone()
    model = Coin(0.75)
    cfg = RobustConfig(eps=8 / 255, steps=2, eot=2, attacks=("apgd-ce",), judge=JudgeConfig(n=20, alpha=0.3))
    rows = evaluate(model, model, x, y, cfg, generator=torch.Generator().manual_seed(0))
    # robust: correct at the clean judgement, and at each of the 3 judged iterates (2 steps + the
    # last) not called broken by two independent judgements in a row
    p_ok = binom.cdf(5, 20, 0.25)  # fewer than 6 of 20 votes (30%) for the other class
    assert rows.clean_correct.mean() == pytest.approx(p_ok, abs=0.1)
    assert rows.robust.mean() == pytest.approx(p_ok * (1 - (1 - p_ok) ** 2) ** 3, abs=0.08)
    assert rows.unconfirmed.sum() > 0  # looks the second judgement overruled


def test_many_looks_do_not_break_a_robust_random_defense():
    """A defense whose wrong class gets 20% of the votes is robust under the rule (30% needed).
    One look calls it broken with probability q = P(Bin(100, 0.2) >= 30) ~ 1.1%; 11 looks of one
    judgement each would break about 11% of the images, confirmed looks about 11 q^2 ~ 0.15%."""
    from scipy.stats import binom

    y = torch.arange(300) % 10
    x = (y / 10).view(-1, 1, 1, 1).expand(300, 3, 32, 32).clone()
    cfg = RobustConfig(eps=8 / 255, steps=10, eot=1, attacks=("apgd-ce",), judge=JudgeConfig(n=100, alpha=0.3))
    rows = evaluate(Coin(0.8), Coin(0.8), x, y, cfg, generator=torch.Generator().manual_seed(1))
    q = binom.sf(29, 100, 0.2)
    clean = rows[rows.clean_correct]
    assert len(clean) >= 290 and (~clean.robust).mean() <= 0.02  # unconfirmed: about 11 q (0.12)
    assert clean.unconfirmed.sum() == pytest.approx(11 * q * len(clean), abs=4 * (11 * q * len(clean)) ** 0.5 + 2)


def _half_plain_sem():
    """A SEM of K = 1 over a deterministic linear model and a noisy member that always votes
    the label (written in pixel 0 as label / 10): half the votes come from the linear model,
    so fooling it alone makes about 50% of the votes wrong, above alpha 0.3. Two live classes
    (the others' bias is -1000), so the CE ascent runs straight at the margin."""
    torch.manual_seed(1)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).eval()
    with torch.no_grad():
        lin[1].bias[2:] = -1000.0
    x = 0.25 + 0.5 * torch.rand(40, 3, 32, 32)
    with torch.no_grad():
        x[:, 0, 0, 0] = lin(x).argmax(1) / 10
        y = lin(x).argmax(1)
    keep = (x[:, 0, 0, 0] * 10).round().long() == y
    sem = StochasticEnsemble({"lin": NoisyClassifier(lin, 0.0), "coin": Coin(1.0)}, {"lin": "a", "coin": "b"}, (1, 1))
    return sem, lin, x[keep], y[keep]


@pytest.mark.parametrize("attack", ["apgd-plain", "apgd-expected"])
def test_surrogate_attacks_break_the_sem_where_its_plain_member_falls(attack):
    sem, lin, x, y = _half_plain_sem()
    with torch.no_grad():
        margin = _margin_linf(lin, x, y)
    eps = float(margin.median())
    cfg = RobustConfig(eps=eps, steps=20, eot=2, attacks=(attack,), judge=JudgeConfig(n=100, alpha=0.3))
    rows = evaluate(sem, sem, x, y, cfg, generator=torch.Generator().manual_seed(0))
    assert rows.clean_correct.all()
    clear = ((margin - eps).abs() > 0.02 * eps).numpy()
    assert (rows.robust[clear] == (margin >= eps).numpy()[clear]).all()
    assert set(rows.broken_by[~rows.robust]) == {attack} and (~rows.robust).sum() >= len(x) // 3


def test_surrogates_are_the_expected_logits_over_draws():
    sem, lin, x, y = _half_plain_sem()
    expected, plain = surrogate(sem, "apgd-expected"), surrogate(sem, "apgd-plain")
    assert expected.names == ["lin", "coin"] and expected.weights.tolist() == [0.5, 0.5]
    assert plain.names == ["lin"] and plain.deterministic
    with torch.no_grad():
        assert torch.allclose(plain(x), 0.5 * lin(x))
    assert surrogate(lin, "apgd-plain") is None  # not a SEM
    noisy = StochasticEnsemble({"n": NoisyClassifier(lin, 0.5)}, {"n": "a"}, (1, 1))
    assert surrogate(noisy, "apgd-plain") is None and surrogate(noisy, "apgd-expected") is not None
    # a model the attack does not apply to keeps what the clean judgement gave, at no cost
    rows = evaluate(lin, lin, x, y, RobustConfig(eps=0.5, steps=5, attacks=("apgd-plain",)))
    assert rows.robust.all() and (rows.gradients == 0).all()


def test_table_has_clopper_pearson_bounds():
    import pandas as pd

    rows = pd.DataFrame({"model": ["a"] * 10 + ["b"] * 4, "clean_correct": [True] * 10 + [True, True, False, False],
                         "robust": [True] * 5 + [False] * 5 + [False] * 4, "broken_by": [""] * 5 + ["apgd-ce"] * 9})
    t = table(rows).set_index("model")
    assert t.loc["a", "robust"] == 50 and t.loc["a", "robust_lo"] == pytest.approx(18.71, abs=0.01)
    assert t.loc["a", "robust_hi"] == pytest.approx(81.29, abs=0.01)
    assert t.loc["b", "clean"] == 50 and t.loc["b", "robust_hi"] == pytest.approx(60.24, abs=0.01)
    assert t.loc["a", "broken_by_apgd-ce"] == 5


def test_the_worst_case_is_robust_only_where_both_evaluations_failed():
    """Per defense, budget and image both have: robust = both robust; budgets and images only one
    side has are left out; broken_by names the first attack that broke it."""
    eps = 4 / 255

    def rows(label, norm, e, robust, broken):
        return pd.DataFrame({"label": label, "norm": norm, "eps": e, "example": range(len(robust)),
                             "clean_correct": True, "robust": robust, "broken_by": broken})

    strong = pd.concat([rows("SEM", "linf", eps, [True, True, False, False], ["", "", "apgd-ce", "apgd-ce"]),
                        rows("F", "linf", eps, [True, False], ["", "apgd-ce"]),
                        rows("SEM", "l2", eps, [True, True], ["", ""])])  # a second budget pairs with its own
    table_rows = pd.concat([rows("SEM", "linf", eps, [True, False, True, False, True], ["", "apgd-dlr-t", "", "apgd-vote", ""]),
                            rows("SEM", "linf", 8 / 255, [False] * 5, ["apgd-ce"] * 5),
                            rows("SEM", "l2", eps, [False] * 5, ["apgd-ce"] * 5),
                            rows("F", "linf", eps, [True, True, True], [""] * 3)])
    w = worst_case(strong, table_rows)
    assert w.groupby(["label", "norm"]).example.apply(list).to_dict() == {
        ("SEM", "linf"): [0, 1, 2, 3], ("SEM", "l2"): [0, 1], ("F", "linf"): [0, 1]}
    sem = w[(w.label == "SEM") & (w.norm == "linf")]
    assert sem.robust.tolist() == [True, False, False, False] and set(w.eps) == {eps}
    assert sem.broken_by.tolist() == ["", "apgd-dlr-t", "apgd-ce", "apgd-ce"]
    assert w[w.label == "F"].robust.tolist() == [True, False]
    assert w[w.norm == "l2"].robust.tolist() == [False, False] and w[w.norm == "l2"].broken_by.tolist() == ["apgd-ce"] * 2
    assert table(w, ["label", "norm"]).set_index(["label", "norm"]).robust.to_dict() == {
        ("SEM", "linf"): 25.0, ("F", "linf"): 50.0, ("SEM", "l2"): 0.0}
    # as read back from CSV (an unbroken image's broken_by is NaN), a clean error on one side only
    read = strong.assign(broken_by=strong.broken_by.replace("", float("nan")))
    wrong = (table_rows.label == "F") & (table_rows.example == 0)
    other = table_rows.assign(clean_correct=~wrong, robust=table_rows.robust & ~wrong)
    w = worst_case(read, other)
    f = w[w.label == "F"]
    assert f.clean_correct.tolist() == [False, True] and f.robust.tolist() == [False, False]
    assert w[(w.label == "SEM") & (w.norm == "linf")].broken_by.tolist() == ["", "apgd-dlr-t", "apgd-ce", "apgd-ce"]
    with pytest.raises(pd.errors.MergeError):  # an image twice on one side pairs with nothing in particular
        worst_case(pd.concat([strong, strong.head(1)]), table_rows)
    with pytest.raises(ValueError, match="share no"):
        worst_case(strong.assign(eps=1 / 255), table_rows)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="attacks must name"):
        RobustConfig(eps=0.1, attacks=("fgsm",))
    with pytest.raises(ValueError, match="eps must be"):
        RobustConfig(eps=-1)


def test_published_context_rows_are_cited_and_filtered():
    from semlib.literature import published

    rows = published()
    assert (rows.robust <= rows.clean).all() and rows.source.str.len().gt(20).all()
    assert set(published("l2").norm) == {"l2"} and len(published("linf")) + len(published("l2")) == len(rows)
    with pytest.raises(ValueError, match="norm must be one of"):
        published("l1")
