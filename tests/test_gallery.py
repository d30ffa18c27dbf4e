"""The gallery (semlib.gallery): the search keeps the adversarial image of each example's smallest
successful distortion without changing the search; images are chosen across the distortions;
rerunning a curve's search on one image finds the curve's distortion and an image that size."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from semlib import gallery, plots
from semlib.attacks import BIM
from semlib.curves import JudgeConfig, SearchConfig, search_distortion
from semlib.study import CurveSpec, Study, StudyConfig


class Linear2(nn.Module):
    """Two-class linear model: class 1 iff w . x + b > 0 (margins per example via b)."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x):
        s = x.flatten(1) @ self.w + self.b[: len(x)] if self.b.numel() > 1 else x.flatten(1) @ self.w + self.b
        return torch.stack([-s, s], 1)


def test_search_keeps_the_adversarial_of_the_smallest_distortion():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3 * 32 * 32, generator=g)
    x = torch.full((1, 3, 32, 32), 0.5)
    y = torch.ones(1, dtype=torch.long)
    kept = []
    for margin in (-1.0, 2.0, 1e6):  # already adversarial, breakable, out of reach
        model = Linear2(w, torch.tensor(margin - float(x[0].flatten() @ w)))
        cfg = dict(search=SearchConfig(eps0=1e-3, search_steps=8, binary_steps=6), judge=JudgeConfig(n=1))
        plain = search_distortion(BIM(steps=10), model, model, x, y, **cfg)
        keep = torch.full_like(x, float("nan"))
        rows = search_distortion(BIM(steps=10), model, model, x, y, keep=keep, **cfg)
        pd.testing.assert_frame_equal(rows, plain)  # keeping changes nothing of the search
        kept.append((float(rows.distortion[0]), keep))
    (d0, k0), (d1, k1), (d2, k2) = kept
    assert d0 == 0 and torch.equal(k0, x)
    assert d1 > 0 and float((k1 - x).abs().max()) == pytest.approx(d1, abs=1e-6)
    assert float(Linear2(w, torch.tensor(2.0 - float(x[0].flatten() @ w)))(k1).argmax()) == 0  # it is adversarial
    assert np.isnan(d2) and torch.isnan(k2).all()


def test_choose_spreads_over_the_images_every_curve_breaks():
    rows = pd.DataFrame({"scenario": ["A"] * 6 + ["F"] * 6, "attack": "bim", "goal": "untargeted", "variant": "sem",
                         "example": list(range(6)) * 2,
                         "distortion": [0.0, 0.01, 0.02, 0.03, np.nan, 0.05] + [0.02, 0.02, np.nan, 0.02, 0.02, 0.02]})
    specs = [CurveSpec("A", "bim"), CurveSpec("F", "bim")]
    assert gallery.choose(rows, specs, 2) == [1, 5]  # broken above 0 by both: 1, 3, 5; the ends of A's order
    assert gallery.choose(rows, specs, 3) == [1, 3, 5]
    assert gallery.choose(rows, specs, 10) == [1, 3, 5]  # as many as there are
    assert gallery.choose(rows, specs, 0) == []


@pytest.mark.slow
def test_a_curves_search_on_one_image_finds_its_distortion(data_dir, tmp_path):
    cfg = StudyConfig.from_dict({"n_images": 6, "steps": 2, "period": 1, "eot": 1, "judge_n": 4, "search_steps": 4,
                                 "binary_steps": 2, "eps0": 0.004, "shard_size": 6})
    study = Study("laptop", cfg, threshold=0.2, data_dir=data_dir, cache_dir=tmp_path)  # the shipped zoo
    specs = [CurveSpec("I", "bim"), CurveSpec("H", "bim")]  # deterministic: the same numbers one image at a time
    rows = study.curves(specs, progress=False)
    shown, images = gallery.table(study, rows, specs, 2)
    assert len(shown) == 2 * len(gallery.choose(rows, specs, 2)) > 0
    np.testing.assert_allclose(shown.distortion, shown.curve_distortion, atol=1e-6)
    np.testing.assert_allclose(shown.linf_measured, shown.distortion, atol=1e-6)
    assert set(images) == {"clean", "I", "H"} and images["I"].shape == images["clean"].shape
    fig = plots.gallery(images, shown)
    assert len(fig.axes) == len(images["clean"]) * 5
