"""Same seed and parameters: byte-identical curve tables on the CPU; another seed: other draws."""
import torch

from semlib.attacks import PGD
from semlib.curves import JudgeConfig, SearchConfig, asr_curve, search_distortion
from semlib.data import eval_subset
from semlib.outputs import project_root
from semlib.zoo import load_submodel


def _curve_csv(seed: int, data_dir) -> str:
    model = load_submodel(project_root() / "zoo" / "laptop", "resnet18_s0.25")
    x, y, idx = eval_subset(6, data_dir)
    df = search_distortion(PGD(steps=3, eot=2), model, model, x, y, search=SearchConfig(eps0=2 / 255, search_steps=4,
                           binary_steps=3), judge=JudgeConfig(n=10), generator=torch.Generator().manual_seed(seed),
                           ids=idx)
    return df.to_csv(index=False) + asr_curve(df.distortion, [1 / 255, 4 / 255, 8 / 255]).to_csv(index=False)


def test_same_seed_same_bytes_other_seed_other_draws(data_dir):
    a, b, c = _curve_csv(0, data_dir), _curve_csv(0, data_dir), _curve_csv(1, data_dir)
    assert a == b
    assert a != c
