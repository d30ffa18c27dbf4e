import math

import pytest
import torch
from scipy.stats import norm
from torch import nn

from semlib.models import CIFAR10_STD, Normalize
from semlib.smoothing import (ABSTAIN, NoisyClassifier, add_noise, certify, clopper_pearson, lower_confidence_bound,
                              mc_counts, mc_success, pixel_radius, predict)


class LinearBinary(nn.Module):
    """Class 1 where w . x + b > 0: its smoothed class-1 probability is Phi((w.x + b) / (sigma |w|))."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w, self.b = w / w.norm(), b

    def forward(self, x):
        s = x.flatten(1) @ self.w + self.b
        return torch.stack([-s, s], 1)


def _linear_case(margin: float):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3 * 32 * 32, generator=g)
    x = torch.full((1, 3, 32, 32), 0.5)
    model = LinearBinary(w, 0.0)
    model.b = margin - float(x.flatten(1) @ model.w)  # signed distance of x to the boundary = margin
    return model, x


def test_smoothed_linear_classifier_matches_analytic_probability():
    sigma, margin, n = 0.5, 0.25, 4000
    model, x = _linear_case(margin)
    counts = mc_counts(NoisyClassifier(model, sigma), x, n, num_classes=2, generator=torch.Generator().manual_seed(1))
    p = norm.cdf(margin / sigma)
    assert int(counts.sum()) == n
    assert abs(counts[0, 1].item() / n - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_certified_radius_is_a_lower_bound_close_to_the_true_distance():
    sigma, margin = 0.5, 0.25
    model, x = _linear_case(margin)
    cert = certify(NoisyClassifier(model, sigma), x, sigma, n0=100, n=20_000, alpha=0.001, num_classes=2,
                   generator=torch.Generator().manual_seed(2))
    assert cert.prediction.item() == 1
    assert 0.2 < cert.radius.item() <= margin


@pytest.mark.parametrize("channel", [None, 1, 2])
def test_normalized_noise_radius_and_its_pixel_bound(channel):
    """A linear classifier on normalized inputs z = (x - mu) / s, noise N(0, sigma^2) on z: Cohen's
    radius holds in z (true distance: the margin); in pixels the boundary lies at
    |w.z + b| / |w / s|, never below the certified radius times min_c s_c (tight when w lives on
    the channel with the smallest std, channel 1 on CIFAR-10)."""
    sigma, margin = 0.5, 0.25
    g = torch.Generator().manual_seed(3)
    w = torch.randn(3, 32 * 32, generator=g)
    if channel is not None:
        w[[c for c in range(3) if c != channel]] = 0
    std = torch.tensor(CIFAR10_STD)[:, None]
    x = torch.full((1, 3, 32, 32), 0.5)
    lin = LinearBinary(w.flatten(), 0.0)
    normalize = Normalize()
    z = normalize(x)
    lin.b = margin - float(z.flatten(1) @ lin.w)
    model = nn.Sequential(normalize, lin)
    cert = certify(NoisyClassifier(model, sigma, "normalized"), x, sigma, n0=100, n=20_000, alpha=0.001,
                   num_classes=2, generator=torch.Generator().manual_seed(2))
    assert cert.prediction.item() == 1
    assert 0.2 < cert.radius.item() <= margin  # normalized units
    true_pixel = margin / float((lin.w.view(3, -1) / std).norm())  # distance to the boundary in pixels
    bound = float(pixel_radius(cert.radius, "normalized"))
    assert bound == pytest.approx(cert.radius.item() * min(CIFAR10_STD))
    assert bound <= true_pixel
    if channel == 1:
        assert bound > 0.8 * true_pixel
    assert float(pixel_radius(cert.radius, "pixel")) == cert.radius.item()


def test_radius_formula_for_a_constant_classifier():
    class Constant(nn.Module):
        def forward(self, x):
            out = torch.zeros(len(x), 10)
            out[:, 3] = 1
            return out

    sigma, n, alpha = 0.25, 500, 0.001
    cert = certify(NoisyClassifier(Constant(), sigma), torch.rand(2, 3, 32, 32), sigma, n0=10, n=n, alpha=alpha)
    p_lower = alpha ** (1 / n)  # Clopper-Pearson lower bound when all n votes agree
    assert cert.prediction.tolist() == [3, 3]
    assert torch.allclose(cert.p_lower, torch.tensor(p_lower, dtype=torch.float32))
    assert torch.allclose(cert.radius, torch.tensor(sigma * norm.ppf(p_lower), dtype=torch.float32))


class CoinFlip(nn.Module):
    """Class 0 or 1 with probability 1/2 each, drawn from the generator."""

    def forward(self, x, generator=None):
        u = torch.rand(len(x), generator=generator)
        return torch.stack([u, 1 - u], 1)


def test_abstains_when_votes_split():
    x = torch.rand(3, 3, 32, 32)
    g = torch.Generator().manual_seed(3)
    assert predict(CoinFlip(), x, n=1000, alpha=0.001, num_classes=2, generator=g).tolist() == [ABSTAIN] * 3
    cert = certify(CoinFlip(), x, 0.25, n0=50, n=1000, alpha=0.001, num_classes=2, generator=g)
    assert cert.prediction.tolist() == [ABSTAIN] * 3 and cert.radius.tolist() == [0.0] * 3


def test_predict_returns_the_clear_winner():
    model, x = _linear_case(1.0)  # 4 sigma from the boundary: ~all votes for class 1
    out = predict(NoisyClassifier(model, 0.25), x, n=200, alpha=0.001, num_classes=2,
                  generator=torch.Generator().manual_seed(4))
    assert out.tolist() == [1]


def test_mc_counts_batches_many_images_exactly():
    x = torch.rand(5, 3, 32, 32)
    counts = mc_counts(CoinFlip(), x, n=37, num_classes=2, batch_size=16, generator=torch.Generator().manual_seed(5))
    assert counts.shape == (5, 2) and counts.sum(1).tolist() == [37] * 5


def test_noise_is_reproducible_and_scaled_per_space():
    x = torch.zeros(64, 3, 32, 32)
    a = add_noise(x, 1.0, "pixel", torch.Generator().manual_seed(0))
    b = add_noise(x, 1.0, "pixel", torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert abs(a.std().item() - 1.0) < 0.01
    c = add_noise(x, 1.0, "normalized", torch.Generator().manual_seed(0))
    per_channel = c.transpose(0, 1).flatten(1).std(1)
    assert torch.allclose(per_channel, torch.tensor(CIFAR10_STD), rtol=0.02)
    assert add_noise(x, 0.0) is x


def test_mc_success_rule_untargeted_and_targeted():
    # N = 10 votes per image; alpha = 0.3
    counts = torch.tensor([
        [8, 2, 0],  # y=0: top is y, best other 0.2 < 0.3 -> fail
        [7, 3, 0],  # y=0: best other 0.3 >= 0.3 -> success
        [4, 6, 0],  # y=0: argmax != y -> success
        [5, 0, 5],  # y=2: tie, argmax picks 0 != 2 -> success
    ])
    y = torch.tensor([0, 0, 0, 2])
    assert mc_success(counts, y, 0.3).tolist() == [False, True, True, True]
    t = torch.tensor([1, 1, 2, 1])
    # targeted: argmax == t or c_t / N >= alpha
    assert mc_success(counts, y, 0.3, target=t).tolist() == [False, True, False, False]


def test_success_rule_compares_fractions_exactly():
    from semlib.smoothing import votes_needed

    # 15 / 50 = 0.3 exactly, while 0.3 * 50 rounds to 15.000000000000002 in floating point
    counts = torch.tensor([[1, 14, 18, 1, 0, 15, 0, 1, 0, 0]])
    assert mc_success(counts, torch.tensor([2]), 0.3).tolist() == [True]
    assert votes_needed(0.3, 50) == 15 and votes_needed(0.3, 1) == 1 and votes_needed(0.3, 10) == 3
    assert all(votes_needed(a, n) / n >= a > (votes_needed(a, n) - 1) / n
               for a in (0.1, 0.3, 0.5, 1.0) for n in (1, 7, 10, 50, 100, 333))


@pytest.mark.parametrize("bad", [0.0, 1.5, -0.1])
def test_mc_success_rejects_bad_alpha(bad):
    with pytest.raises(ValueError, match="alpha"):
        mc_success(torch.ones(1, 3, dtype=torch.long), torch.zeros(1, dtype=torch.long), bad)


def test_clopper_pearson_known_values():
    lo, hi = clopper_pearson(torch.tensor([0, 5, 10]), 10, 0.05)
    assert lo[0] == 0 and hi[2] == 1
    assert abs(lo[1].item() - 0.187086) < 1e-5 and abs(hi[1].item() - 0.812914) < 1e-5
    assert lower_confidence_bound(torch.tensor([0]), 10, 0.05).item() == 0


@pytest.mark.parametrize("x, msg", [
    (torch.rand(2, 32, 32), "shape"),
    (torch.rand(2, 3, 32, 32) * 2, r"\[0, 1\]"),
    (torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8), "float"),
])
def test_bad_images_are_refused(x, msg):
    with pytest.raises(ValueError, match=msg):
        mc_counts(CoinFlip(), x, n=2)


@pytest.mark.parametrize("kw", [{"n": 0}, {"alpha": 0.0}, {"alpha": 1.0}])
def test_bad_counts_and_alpha(kw):
    args = {"n": 10, "alpha": 0.01, **kw}
    with pytest.raises(ValueError):
        predict(CoinFlip(), torch.rand(1, 3, 32, 32), num_classes=2, **args)


def test_negative_sigma_refused():
    with pytest.raises(ValueError, match="sigma"):
        NoisyClassifier(nn.Identity(), -0.1)
    with pytest.raises(ValueError, match="noise_space"):
        NoisyClassifier(nn.Identity(), 0.1, "latent")
