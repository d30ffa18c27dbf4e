import math

import pytest
import torch

from semlib.baselines import RSE, adp_loss
from semlib.models import build_model


def test_rse_is_stochastic_reproducible_and_averages():
    base = build_model("vgg11", width=0.0625, stem_stride=2).eval()
    plain = build_model("vgg11", width=0.0625, stem_stride=2).eval()
    plain.load_state_dict(base.state_dict())
    rse = RSE(base, 0.2, 0.1, passes=1)
    x = torch.rand(3, 3, 32, 32)
    a = rse(x, torch.Generator().manual_seed(0))
    b = rse(x, torch.Generator().manual_seed(0))
    c = rse(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    quiet = RSE(build_model("vgg11", width=0.0625, stem_stride=2).eval(), 0.0, 0.0)
    quiet.base.load_state_dict(plain.state_dict())
    with torch.no_grad():
        assert torch.allclose(quiet(x), plain(x), atol=1e-6)  # zero noise: the plain model
    many = RSE(base, 0.2, 0.1, passes=8)
    out = many(x, torch.Generator().manual_seed(2))
    assert torch.allclose(out.exp().sum(1), torch.ones(3), atol=1e-5)  # log of averaged probabilities
    x.requires_grad_(True)
    many(x).sum().backward()
    assert x.grad is not None


def test_rse_seeded_calls_do_not_touch_the_global_generator():
    """Training calls the RSE without a generator: after seed() its noise comes from its own
    seeded generator (not torch's global one, which baselines.py once seeded by hand)."""
    x = torch.rand(2, 3, 32, 32)
    rse = RSE(build_model("vgg11", width=0.0625, stem_stride=2).eval(), 0.2, 0.1)
    outs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        state = torch.get_rng_state()
        with torch.no_grad():
            outs.append(rse.seed(7)(x))
        assert torch.equal(torch.get_rng_state(), state)  # the global generator was not drawn from
    assert torch.equal(*outs)
    with torch.no_grad():
        assert not torch.equal(rse.seed(8)(x), outs[0])
        assert torch.equal(rse(x, torch.Generator().manual_seed(3)), rse(x, torch.Generator().manual_seed(3)))


def test_adp_diversity_term_analytic():
    y = torch.tensor([0])
    # two members whose non-maximal predictions are orthogonal: det(M^T M) = 1, log-det 0
    ortho = torch.log(torch.tensor([[[0.5, 0.5, 1e-9, 1e-9]], [[0.5, 1e-9, 0.5, 1e-9]]]))
    same = torch.log(torch.tensor([[[0.5, 0.5, 1e-9, 1e-9]], [[0.5, 0.5, 1e-9, 1e-9]]]))
    base = lambda z: adp_loss(z, y, alpha=0.0, beta=0.0)  # noqa: E731
    div = lambda z: (adp_loss(z, y, alpha=0.0, beta=1.0) - base(z)).item()  # noqa: E731  = -log det
    assert div(ortho) == pytest.approx(0.0, abs=1e-4)
    assert div(same) > 40  # identical members: det ~ 0, -log(det + 1e-20) ~ 46
    # the entropy term: uniform mean prediction over 4 classes has entropy log 4
    uniform = torch.zeros(2, 1, 4)
    ent = (adp_loss(uniform, y, alpha=1.0, beta=0.0) - adp_loss(uniform, y, alpha=0.0, beta=0.0)).item()
    assert ent == pytest.approx(-math.log(4), abs=1e-5)


def test_adp_needs_an_ensemble():
    with pytest.raises(ValueError, match="at least 2"):
        adp_loss(torch.zeros(1, 2, 10), torch.zeros(2, dtype=torch.long))


def test_each_baseline_is_reused_unless_its_own_recipe_changes():
    """Editing ADP's settings must not retrain RSE, and back (a baseline's recipe holds only
    what shapes it, its training and its parents)."""
    from semlib.baselines import BaselineSpec, baseline_recipe
    from semlib.zoo import load_spec

    zoo_spec = load_spec("smoke")
    raw = zoo_spec.baselines
    spec = BaselineSpec.from_dict(raw, zoo_spec)
    other_adp = BaselineSpec.from_dict({**raw, "adp": {**raw.get("adp", {}), "alpha": 7.0}}, zoo_spec)
    other_rse = BaselineSpec.from_dict({**raw, "rse": {**raw.get("rse", {}), "inner_sigma": 0.3}}, zoo_spec)
    parents = {"x": "0" * 64}

    def recipe(s, which):
        return baseline_recipe(which, s, s.train_config(zoo_spec, which), parents)

    assert recipe(other_adp, "rse") == recipe(spec, "rse") and recipe(other_adp, "adp") != recipe(spec, "adp")
    assert recipe(other_rse, "adp") == recipe(spec, "adp") and recipe(other_rse, "rse") != recipe(spec, "rse")
    assert recipe(spec, "rse")["spec"]["rse"]["arch"] == spec.rse.get("arch", spec.members[0])
