"""APGD (the adaptive attacker of notebook 06b): the step-size schedule, the DLR loss, an
analytic optimum, and agreement with torchattacks' APGD as an independent reference."""
import pytest
import torch
from torch import nn

from semlib.attacks import APGD, BIM, make_attack
from semlib.attacks.apgd import checkpoints
from semlib.attacks.gradient import attack_loss


def test_checkpoints_follow_the_paper():
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (Croce & Hein 2020, Sec. 3.2)
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(10) == [3, 5, 6, 7, 8, 9]
    assert checkpoints(1) == []


def test_dlr_loss_by_hand():
    z = torch.tensor([[4.0, 1.0, 3.0, 0.0, -1.0]])
    y = torch.tensor([0])
    # untargeted: -(z_y - max_other) / (z_pi1 - z_pi3) = -(4 - 3) / (4 - 1)
    assert attack_loss(z, y, None, "dlr").item() == pytest.approx(-1 / 3)
    # targeted at class 2: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2) = -(4 - 3) / (4 - 0.5)
    assert attack_loss(z, y, torch.tensor([2]), "dlr").item() == pytest.approx(-1 / 3.5)
    with pytest.raises(ValueError, match="unknown attack loss"):
        attack_loss(z, y, None, "hinge")


class TwoClassLinear(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3 * 32 * 32, 2)

    def forward(self, x):
        return self.lin(x.flatten(1))


def test_reaches_the_analytic_optimum_of_a_linear_margin():
    # with two classes the CE loss grows with the margin z_other - z_y, which is linear in x:
    # its maximum over the Linf ball is the vertex x - eps * sign(w_y - w_other)
    model = TwoClassLinear()
    x = 0.25 + 0.5 * torch.rand(3, 3, 32, 32)  # far from the [0, 1] box edges
    y = torch.tensor([0, 1, 0])
    eps = 0.02
    w = model.lin.weight.detach()
    direction = (w[y] - w[1 - y]).view(3, 3, 32, 32).sign()
    expected = x - eps * direction
    got = APGD(steps=5, eot=1, random_start=False)(model, x, y, eps).x_adv
    assert torch.allclose(got, expected, atol=1e-6)
    with pytest.raises(ValueError, match="DLR loss needs at least 3 classes"):
        APGD(steps=5, eot=1, loss="dlr")(model, x, y, eps)


def test_stays_in_the_ball_and_counts_gradients():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    x = torch.rand(4, 3, 32, 32)
    y = torch.arange(4)
    eps = torch.tensor([0.0, 0.01, 0.03, 0.1])
    for norm in ("linf", "l2"):
        res = make_attack("apgd", steps=7, eot=3, norm=norm)(model, x, y, eps)
        dist = (res.x_adv - x).flatten(1)
        size = dist.abs().amax(1) if norm == "linf" else dist.norm(dim=1)
        assert (size <= eps + 1e-6).all() and res.x_adv.min() >= 0 and res.x_adv.max() <= 1
        assert res.gradients.tolist() == [21] * 4


def test_at_least_as_strong_as_bim_on_a_real_model(cifar_case):
    model, x, y = cifar_case
    eps = torch.full((len(x),), 2 / 255)
    x_bim = BIM(steps=10)(model, x, y, eps).x_adv
    x_apgd = APGD(steps=10, eot=1, random_start=False)(model, x, y, eps).x_adv
    with torch.no_grad():
        bim, apgd = model(x_bim).argmax(1) != y, model(x_apgd).argmax(1) != y
    assert apgd.sum() >= bim.sum()


def test_success_rate_agrees_with_torchattacks(cifar_case):
    torchattacks = pytest.importorskip("torchattacks")
    model, x, y = cifar_case
    eps = 1 / 255
    ref = torchattacks.APGD(model, norm="Linf", eps=eps, steps=20, n_restarts=1, loss="ce", seed=0)(x, y)
    ours = APGD(steps=20, eot=1)(model, x, y, eps, generator=torch.Generator().manual_seed(0)).x_adv
    with torch.no_grad():
        asr_ref = (model(ref).argmax(1) != y).float().mean().item()
        asr_ours = (model(ours).argmax(1) != y).float().mean().item()
    # different random starts: the rates agree within a few images of 64
    assert abs(asr_ref - asr_ours) <= 0.1, (asr_ref, asr_ours)


@pytest.fixture(scope="module")
def cifar_case(data_dir):
    from semlib.data import eval_subset
    from semlib.outputs import project_root
    from semlib.zoo import load_submodel

    model = load_submodel(project_root() / "zoo" / "laptop", "resnet18_s0").base.eval()
    x, y, _ = eval_subset(64, data_dir)
    return model, x, y
