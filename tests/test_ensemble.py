import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from torch import nn

from semlib.ensemble import Ensemble, SEMSampler, StochasticEnsemble, fit_weights
from semlib.smoothing import NoisyClassifier

# a collection shaped like the paper's: families with several variants and sigmas
NAMES, FAMS = [], []
for fam, variants in {"densenet": 2, "resnet": 3, "vgg": 1, "wrn": 1, "alexnet": 1}.items():
    for v in range(variants):
        for s in (0, 0.25, 0.75):
            NAMES.append(f"{fam}{v}_s{s}")
            FAMS.append(fam)


def test_sampler_frequencies_match_algorithm_1():
    n = 10_000
    sampler = SEMSampler(NAMES, FAMS, (1, 4))
    mask = sampler.draw(n, torch.Generator().manual_seed(0))
    k = mask.sum(1)
    # K uniform on 1..4
    assert chisquare(np.bincount(k.numpy(), minlength=5)[1:]).pvalue > 0.001
    # each family appears at most once per draw, and with probability E[K] / F overall
    fam_ids = np.array([sorted(set(FAMS)).index(f) for f in FAMS])
    per_family = np.stack([mask[:, fam_ids == i].sum(1).numpy() for i in range(5)], 1)
    assert per_family.max() == 1
    assert chisquare(per_family.sum(0)).pvalue > 0.001
    # within a family, every sub-model (variant x sigma) is equally likely
    for i in range(5):
        chosen = mask[:, fam_ids == i].sum(0).numpy()
        assert chisquare(chosen).pvalue > 0.001, sorted(set(FAMS))[i]


@pytest.mark.parametrize("k_range", [(1, 4), (2, 3), (3, 5)])
def test_inclusion_probabilities_match_the_draws(k_range):
    """Exact P(drawn) per sub-model against 40,000 draws, with families of sizes 1, 2 and 3
    (K 4 and 5 exceed the 3 families: the K-distinct-sub-models branch)."""
    names = ["a0", "b0", "b1", "c0", "c1", "c2"]
    sampler = SEMSampler(names, [n[0] for n in names], k_range)
    p = sampler.inclusion()
    n = 40_000
    freq = sampler.draw(n, torch.Generator().manual_seed(2)).double().mean(0)
    se = (p * (1 - p) / n).sqrt()
    assert ((freq - p).abs() <= 4 * se).all(), (freq.tolist(), p.tolist())
    # the expected draw size is E[K]
    assert float(p.sum()) == pytest.approx(sum(range(k_range[0], k_range[1] + 1)) / (k_range[1] - k_range[0] + 1))


def test_single_architecture_collection_draws_distinct_submodels():
    names = [f"wrn_s{s}" for s in (0.12, 0.15, 0.25, 0.5, 0.75, 1.0, 1.25)]
    sampler = SEMSampler(names, ["wrn"] * 7, (2, 4))
    mask = sampler.draw(10_000, torch.Generator().manual_seed(1))
    assert set(mask.sum(1).tolist()) == {2, 3, 4}
    assert chisquare(mask.sum(0).numpy()).pvalue > 0.001


def test_draws_are_reproducible_and_recorded():
    a = SEMSampler(NAMES, FAMS, (1, 4)).draw(50, torch.Generator().manual_seed(3))
    b = SEMSampler(NAMES, FAMS, (1, 4)).draw(50, torch.Generator().manual_seed(3))
    c = SEMSampler(NAMES, FAMS, (1, 4)).draw(50, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    r = SEMSampler(NAMES, FAMS, (1, 4)).realizations(a[:2])
    assert r[0].k == int(a[0].sum()) and len(r[0].members) == r[0].k


@pytest.mark.parametrize("k_range, msg", [((0, 2), "1 <= K_min <= K_max"), ((3, 2), "1 <= K_min <= K_max"),
                                          ((1, 99), "exceeds")])
def test_bad_k_range(k_range, msg):
    with pytest.raises(ValueError, match=msg):
        SEMSampler(NAMES, FAMS, k_range)


class Onehot(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x):
        out = torch.zeros(len(x), 10)
        out[:, self.c] = 1.0
        return out + 0.0 * x.flatten(1).sum(1, keepdim=True)  # depends on x, so attacks can differentiate


def test_fixed_ensemble_sums_logits():
    ens = Ensemble([Onehot(1), Onehot(1), Onehot(2)])
    assert ens(torch.rand(2, 3, 32, 32)).tolist()[0][:3] == [0.0, 2.0, 1.0]
    ens = Ensemble([Onehot(1), Onehot(2)], weights=[0.5, 2.0])
    assert ens(torch.rand(1, 3, 32, 32))[0, 1:3].tolist() == [0.5, 2.0]
    with pytest.raises(ValueError):
        Ensemble([])


def test_sem_draws_per_request():
    members = {f"m{c}": NoisyClassifier(Onehot(c), 0.0) for c in range(6)}
    fams = {f"m{c}": f"f{c}" for c in range(6)}
    sem = StochasticEnsemble(members, fams, (1, 3))
    x = torch.rand(400, 3, 32, 32)
    out = sem(x, torch.Generator().manual_seed(0))
    # each image's logits are the one-hot votes of its own drawn members
    assert torch.equal(out[:, :6] > 0, sem.last_draw)
    assert set(out.sum(1).long().tolist()) == {1, 2, 3}
    assert len({tuple(r) for r in sem.last_draw.tolist()}) > 20  # different images, different draws
    real = sem.realizations()
    assert len(real) == 400 and [r.k for r in real] == sem.last_draw.sum(1).tolist()


def test_fit_weights_prefers_the_useful_member():
    x = torch.rand(64, 3, 32, 32)
    y = torch.full((64,), 2)
    ens = Ensemble([Onehot(1), Onehot(2)])
    w = fit_weights(ens, x, y, steps=50)
    assert w[1] > w[0] and abs(float(w.sum()) - 2.0) < 1e-5


def test_held_draws_for_attackers_a_and_b():
    from semlib.attacks import BIM
    from semlib.ensemble import HeldDraws

    members = {f"m{c}": NoisyClassifier(Onehot(c), 0.0) for c in range(6)}
    sem = StochasticEnsemble(members, {f"m{c}": f"f{c}" for c in range(6)}, (1, 3))
    seen = []
    for period, expect_changes in ((1, True), (4, False)):
        view = HeldDraws(sem, period=period)
        g = torch.Generator().manual_seed(0)
        view.on_attack_start(8, g)
        masks = []
        for step in range(3):
            view.on_attack_step(step, g)
            masks.append(view.masks[0].clone())
            out = view.forward_indexed(torch.rand(16, 3, 32, 32), torch.arange(8).repeat(2), g)
            # every copy of an image is answered by that image's held realization
            assert torch.equal(out[:8, :6] > 0, masks[-1]) and torch.equal(out[8:, :6] > 0, masks[-1])
        changed = not all(torch.equal(masks[0], m) for m in masks[1:])
        assert changed == expect_changes
        seen.append(view)
    # the hooks are driven by the attack engine
    x = torch.rand(4, 3, 32, 32)
    BIM(steps=2, eot=2)(seen[0], x, torch.zeros(4, dtype=torch.long), 0.01, generator=torch.Generator().manual_seed(1))
    assert seen[0].masks[0].shape == (4, 6)
