import pytest
import torch
from torch import nn

from semlib.ensemble import Ensemble, HeldDraws, StochasticEnsemble
from semlib.scenarios import SCENARIOS, Defended, Defenses, build, known_half, scenario
from semlib.smoothing import NoisyClassifier


class Lin(nn.Module):
    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(3 * 32 * 32, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.fixture
def defenses():
    collection = {f"{f}_s{s:g}": NoisyClassifier(Lin(i), s) for i, (f, s) in
                  enumerate((f, s) for f in ("densenet", "resnet", "vgg", "wrn") for s in (0.0, 0.25))}
    families = {n: n.split("_")[0] for n in collection}
    baseline = {n: collection[n] for n in ("densenet_s0.25", "resnet_s0.25", "wrn_s0.25")}
    plain = {n: collection[n] for n in ("densenet_s0", "resnet_s0", "wrn_s0")}
    return Defenses(collection, families, baseline, plain, collection["resnet_s0.25"], collection["resnet_s0"])


def test_table2_is_complete():
    assert list(SCENARIOS) == list("ABCDEFGHIJKLM")
    assert [s.name for s in SCENARIOS.values() if s.query] == list("EJKLM")
    assert all(SCENARIOS[n].defended is Defended.SEM for n in "ABCDE")
    assert [s.name for s in SCENARIOS.values() if s.transfer] == ["C", "D"]
    with pytest.raises(ValueError, match="unknown scenario 'Z'"):
        scenario("Z")


def test_build_gives_each_attacker_its_view(defenses):
    sem = defenses.models[Defended.SEM]
    a, judge = build("A", defenses)
    assert isinstance(a, HeldDraws) and a.period == 1 and a.sem is sem and judge is sem
    b, _ = build("B", defenses, period=7, pool=3)
    assert isinstance(b, HeldDraws) and b.period == 7 and b.pool == 3 and b.sem is not sem  # its own draws
    c, judge_c = build("C", defenses, half_seed=3)
    assert isinstance(c, StochasticEnsemble) and judge_c is sem
    half = known_half(list(defenses.collection), 3)
    assert c.names == half and len(half) == 4
    d, _ = build("D", defenses, half_seed=3)
    assert isinstance(d, Ensemble) and d.names == half and d.deterministic
    for name in "EFGHIJKLM":
        attacker, judge = build(name, defenses)
        assert attacker is judge is defenses.models[SCENARIOS[name].defended]
    assert defenses.deterministic(Defended.ENSEMBLE) and not defenses.deterministic(Defended.ENSEMBLE_SMOOTHED)


def test_known_half_is_seeded():
    names = [f"m{i}" for i in range(9)]
    assert known_half(names, 0) == known_half(names, 0)
    assert known_half(names, 0) != known_half(names, 1)
    assert len(known_half(names, 0)) == 5


def test_substitute_ensemble_uses_the_known_weights_without_noise(defenses):
    d, _ = build("D", defenses, half_seed=0)
    x = torch.rand(2, 3, 32, 32)
    expected = sum(defenses.collection[n].base(x) for n in d.names)
    assert torch.allclose(d(x), expected, atol=1e-5)
