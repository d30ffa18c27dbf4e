import pytest
import torch
from torch import nn

from semlib.attacks import BIM, MIM, NES, PGD, SPSA, eot_gradient, make_attack, margin_loss
from semlib.attacks.base import Norm, per_example_norm
from semlib.models import build_model
from semlib.smoothing import NoisyClassifier

torchattacks = pytest.importorskip("torchattacks")


@pytest.fixture(scope="module")
def cifar_case(data_dir):
    """The shipped laptop-zoo ResNet-18 (unsmoothed, deterministic) on the first 8 test images."""
    from semlib.data import eval_subset
    from semlib.outputs import project_root
    from semlib.zoo import load_submodel

    model = load_submodel(project_root() / "zoo" / "laptop", "resnet18_s0").base.eval()
    x, y, _ = eval_subset(8, data_dir)
    return model, x, y


@pytest.mark.parametrize("ours, theirs", [
    (BIM, lambda m, eps, a, s: torchattacks.BIM(m, eps=eps, alpha=a, steps=s)),
    (MIM, lambda m, eps, a, s: torchattacks.MIFGSM(m, eps=eps, alpha=a, steps=s, decay=1.0)),
    (lambda **kw: PGD(random_start=False, **kw), lambda m, eps, a, s: torchattacks.PGD(m, eps=eps, alpha=a, steps=s,
                                                                                        random_start=False)),
])
def test_matches_torchattacks(cifar_case, ours, theirs):
    model, x, y = cifar_case
    # eps and step size exactly representable in float32, so both libraries step by bit-identical
    # amounts (with 8/255 a 1-ulp difference in the step size flips the sign of a near-zero
    # gradient after a few steps, and a few pixels then differ by one step)
    eps, steps = 8 / 256, 8
    alpha = 1.5 * eps / steps
    ref = theirs(model, eps, alpha, steps)(x, y)
    got = ours(steps=steps)(model, x, y, torch.full((len(x),), eps)).x_adv
    assert (got - ref).abs().max().item() < 1e-5


def test_targeted_bim_matches_torchattacks(cifar_case):
    model, x, y = cifar_case
    t = (y + 1) % 10
    eps, steps = 8 / 256, 8
    ref_attack = torchattacks.BIM(model, eps=eps, alpha=1.5 * eps / steps, steps=steps)
    ref_attack.set_mode_targeted_by_function(lambda images, labels: t, quiet=True)
    ref = ref_attack(x, y)
    got = BIM(steps=steps)(model, x, y, eps, target=t).x_adv
    assert (got - ref).abs().max().item() < 1e-5


class Counter(nn.Module):
    """Deterministic given the generator: logits = W (x + noise)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x, generator=None):
        return self.lin((x + 0.3 * torch.randn(x.shape, generator=generator)).flatten(1).tanh())


def test_eot_gradient_is_mean_of_per_draw_gradients():
    torch.manual_seed(0)
    model = Counter()
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    got = eot_gradient(model, x, y, eot=5, chunk=4, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    per_draw = []
    for _ in range(5):
        xi = x.clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(model(xi, g), y, reduction="sum")
        per_draw.append(torch.autograd.grad(loss, xi)[0])
    assert torch.allclose(got, torch.stack(per_draw).mean(0), atol=1e-6)


def test_eot_packing_does_not_change_the_expectation():
    """Packing several EOT samples per pass changes which noise goes where, not the estimate."""
    torch.manual_seed(0)
    model = NoisyClassifier(build_model("vgg11", width=0.125, stem_stride=2).eval(), 0.25)
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    a = eot_gradient(model, x, y, eot=400, chunk=4, generator=torch.Generator().manual_seed(1))
    b = eot_gradient(model, x, y, eot=400, chunk=256, generator=torch.Generator().manual_seed(2))
    cos = nn.functional.cosine_similarity(a.flatten(1), b.flatten(1)).min()
    assert cos > 0.9


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("attack", [BIM, MIM, PGD])
def test_budget_and_pixel_range_respected(cifar_case, attack, norm):
    model, x, y = cifar_case
    eps = torch.linspace(0, 0.5 if norm == "l2" else 8 / 255, len(x))
    res = attack(norm=norm, steps=5)(model, x, y, eps, generator=torch.Generator().manual_seed(0))
    d = per_example_norm(res.x_adv - x, attack(norm=norm).norm)
    assert bool((d <= eps + 1e-6).all())
    assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1
    assert torch.equal(res.x_adv[0], x[0])  # eps = 0 leaves the image alone
    assert res.gradients.tolist() == [5] * len(x)


def test_attack_raises_loss(cifar_case):
    model, x, y = cifar_case
    res = PGD(steps=10)(model, x, y, 8 / 255, generator=torch.Generator().manual_seed(0))
    ce = nn.functional.cross_entropy
    with torch.no_grad():
        assert ce(model(res.x_adv), y) > ce(model(x), y) + 0.5


@pytest.mark.parametrize("kw, msg", [
    ({"eps": -0.1}, "eps must be finite and >= 0"),
    ({"eps": torch.ones(3)}, "eps must be a number or a tensor of shape"),
    ({"y": torch.zeros(5, dtype=torch.long)}, "labels must have shape"),
    ({"x": torch.rand(8, 3, 32, 32) + 1}, r"\[0, 1\]"),
    ({"target": torch.zeros(3, dtype=torch.long)}, "targets must have shape"),
])
def test_bad_inputs(cifar_case, kw, msg):
    model, x, y = cifar_case
    args = {"x": x, "y": y, "eps": 0.01, "target": None, **kw}
    with pytest.raises(ValueError, match=msg):
        BIM(steps=1)(model, args["x"], args["y"], args["eps"], target=args["target"])


def test_unknown_norm_and_attack():
    with pytest.raises(ValueError, match="unknown norm 'l3'"):
        BIM(norm="l3")
    with pytest.raises(ValueError, match="unknown attack 'cw'; known: fgsm, bim"):
        make_attack("cw")


class Smooth(nn.Module):
    """A smooth toy classifier on 32x32 images."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.randn(10, 3 * 32 * 32, generator=g) * 0.05

    def forward(self, x):
        return x.flatten(1) @ self.w.T


@pytest.mark.parametrize("attack", [NES, SPSA])
@pytest.mark.parametrize("targeted", [False, True])
def test_query_attacks_lower_the_margin_within_budget(attack, targeted):
    model = Smooth()
    x = torch.rand(4, 3, 32, 32) * 0.5 + 0.25
    with torch.no_grad():
        y = model(x).argmax(1)
    t = (y + 3) % 10 if targeted else None
    atk = attack(max_queries=1000, samples=20, eta=0.01, lr_ratio=0.1)
    res = atk(model, x, y, 8 / 255, target=t, generator=torch.Generator().manual_seed(0))
    before = margin_loss(model(x).log_softmax(1), y, t)
    after = margin_loss(model(res.x_adv).log_softmax(1), y, t)
    assert bool((after > before).all())  # the attack's loss (to ascend) went up for every example
    assert bool((res.queries <= 1000).all()) and res.queries.tolist() == [1000] * 4
    assert per_example_norm(res.x_adv - x, atk.norm).max() <= 8 / 255 + 1e-6


@pytest.mark.parametrize("attack", [NES, SPSA])
def test_a_small_query_budget_still_reaches_the_eps_ball(cifar_case, attack):
    """The laptop budget (200 queries, 10 pairs: 10 iterations) at a large eps breaks the
    unsmoothed laptop ResNet-18 on >= 90% of the images its clean prediction gets right: the step
    size scales with eps and iterations, so the steps can reach the ball's boundary (at 0.05 eps
    per step they stopped at half of it)."""
    model, x, y = cifar_case
    with torch.no_grad():
        right = model(x).argmax(1) == y
    x, y = x[right], y[right]
    res = attack(max_queries=200, samples=10)(model, x, y, 32 / 255, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        broken = (model(res.x_adv).argmax(1) != y).float().mean()
    assert len(y) >= 6 and broken >= 0.9, f"{attack.__name__} broke {broken:.0%} of {len(y)}"
    far = per_example_norm(res.x_adv - x, Norm.LINF)
    assert bool((far <= 32 / 255 + 1e-6).all()) and float(far.max()) > 0.75 * 32 / 255


def test_query_count_is_exact():
    calls = []

    class Counting(Smooth):
        def forward(self, x):
            calls.append(len(x))
            return super().forward(x)

    res = NES(max_queries=130, samples=20, chunk=64)(Counting(), torch.rand(3, 3, 32, 32), torch.zeros(3, dtype=torch.long), 0.03)
    # 130 // 40 = 3 iterations of 40 queries per image
    assert sum(calls) == 3 * 40 * 3 and res.queries.tolist() == [120] * 3
