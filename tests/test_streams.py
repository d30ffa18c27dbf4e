"""Per-request random streams (semlib.streams): an image meets the same random numbers whatever
its batch, chunking, position or shard. The models here compute their logits elementwise from
the (noisy) pixels, so floating-point order cannot blur the comparison: every check is exact."""
import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from torch import nn

from semlib.attacks import APGD, BIM, NES, PGD
from semlib.curves import SearchConfig, search_distortion
from semlib.ensemble import HeldDraws, SEMSampler, StochasticEnsemble
from semlib.judge import JudgeConfig, judge
from semlib.smoothing import NoisyClassifier, mc_counts
from semlib.streams import RowStreams, Streams, bind, select


class Pixels(nn.Module):
    """Logits = the first 10 pixels of the first row, scaled: no sum over features."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return self.scale * (x[:, 0, 0, :10] - 0.5)


def _sem(k_range=(1, 3)):
    sigmas = [0.0, 0.1, 0.2]
    members, families = {}, {}
    for f in range(4):
        for j, s in enumerate(sigmas[: 1 + f % 3]):
            name = f"f{f}_{j}"
            members[name] = NoisyClassifier(Pixels(2.0 + f + j), s)
            families[name] = f"f{f}"
    return StochasticEnsemble(members, families, k_range)


def _images(n=12, seed=0):
    """Images whose label pixel leads the others by 0.1 to 0.4."""
    g = torch.Generator().manual_seed(seed)
    x = 0.5 * torch.rand(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    x[torch.arange(n), 0, 0, y] = 0.6 + 0.3 * torch.rand(n, generator=g)
    return x, y, torch.arange(100, 100 + n)


def test_a_request_stream_depends_on_the_image_and_its_count_only():
    a, b = Streams(7, ids=[5, 9]), Streams(7, ids=[9, 5])
    ra, rb = a.rows(torch.tensor([0, 1, 0])), b.rows(torch.tensor([1, 0, 1]))
    xa, xb = ra.draw(torch.randn, (4,)), rb.draw(torch.randn, (4,))
    assert torch.equal(xa, xb)  # image 5's first and second requests, image 9's first
    assert not torch.equal(xa[0], xa[2]) and not torch.equal(xa[0], xa[1])
    assert not torch.equal(Streams(8, ids=[5]).rows(torch.tensor([0])).draw(torch.randn, (4,))[0], xa[0])
    view = Streams(7, ids=[3, 4, 5, 9]).view(torch.tensor([2, 3]))  # ids 5 and 9 again
    assert torch.equal(view.rows(torch.tensor([0, 1, 0])).draw(torch.randn, (4,)), xa)
    g = torch.Generator()
    assert bind(g, 3) is g and select(g, torch.tensor([1])) is g and bind(None, 2) is None
    with pytest.raises(ValueError, match="2 bound request streams for 3 rows"):
        bind(RowStreams([g, g]), 3)


def test_keyed_draws_follow_algorithm_1():
    names = ["a0", "b0", "b1", "c0", "c1", "c2"]
    sampler = SEMSampler(names, [n[0] for n in names], (1, 4))
    n = 20_000
    mask = sampler.draw(n, Streams(3))
    k = mask.sum(1)
    assert chisquare(torch.bincount(k, minlength=5)[1:].numpy()).pvalue > 0.001
    p, freq = sampler.inclusion(), mask.double().mean(0)
    assert ((freq - p).abs() <= 4 * (p * (1 - p) / n).sqrt()).all()
    fam = torch.tensor([0, 1, 1, 2, 2, 2])
    per_family = torch.stack([mask[:, fam == i].sum(1) for i in range(3)], 1)
    assert int(per_family[k <= 3].max()) == 1  # K <= F: one sub-model per family


@pytest.mark.parametrize("chunk", [1, 7, 512])
def test_judge_and_votes_do_not_depend_on_chunks_or_batches(chunk):
    sem, (x, y, ids) = _sem(), _images()
    cfg = JudgeConfig(n=30, alpha=0.3, chunk=chunk)
    ref = judge(sem, x, y, None, JudgeConfig(n=30, alpha=0.3), Streams(1, ids))
    got = judge(sem, x, y, None, cfg, Streams(1, ids))
    assert torch.equal(ref[0], got[0]) and torch.equal(ref[1], got[1])
    # the images in another order and in two batches (two shards or workers)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(chunk))
    halves = [perm[:5], perm[5:]]
    parts = [judge(sem, x[h], y[h], None, cfg, Streams(1, ids[h])) for h in halves]
    ok, draws = torch.zeros_like(ref[0]), torch.zeros_like(ref[1])
    for h, (o, d) in zip(halves, parts):
        ok[h], draws[h] = o, d
    assert torch.equal(ok, ref[0]) and torch.equal(draws, ref[1])
    counts = mc_counts(sem, x, 20, batch_size=chunk, generator=Streams(2, ids))
    assert torch.equal(counts, mc_counts(sem, x, 20, batch_size=64, generator=Streams(2, ids)))


def _search(attack, model, x, y, ids, seed=4):
    return search_distortion(attack, model, model, x, y, search=SearchConfig(eps0=4 / 255, search_steps=6, binary_steps=2),
                             judge=JudgeConfig(n=20, alpha=0.3), generator=Streams(seed, ids), ids=ids.numpy())


@pytest.mark.parametrize("attack", [BIM(steps=3, eot=2), PGD(steps=3, eot=3, chunk=5), APGD(steps=4, eot=2, chunk=3),
                                    NES(samples=4, max_queries=16, chunk=10)], ids=lambda a: a.name)
@pytest.mark.parametrize("held", [False, True], ids=["fresh", "attacker A"])
def test_a_search_gives_the_same_numbers_on_any_split_of_the_images(attack, held):
    sem, (x, y, ids) = _sem(), _images(10)
    model = HeldDraws(sem, period=1) if held else sem
    whole = _search(attack, model, x, y, ids)
    parts = [_search(attack, model, x[s], y[s], ids[s]) for s in (slice(0, 3), slice(3, 10))]
    np.testing.assert_array_equal(whole.distortion, np.concatenate([p.distortion for p in parts]))
    for col in ("judge_draws", "gradients", "queries", "clean_correct"):
        assert whole[col].tolist() == sum((p[col].tolist() for p in parts), []), col
    assert (whole.distortion > 0).sum() >= 2  # the attack did something to compare
    other = _search(attack, model, x, y, ids, seed=5)
    assert not other.judge_draws.equals(whole.judge_draws) or not other.distortion.equals(whole.distortion)


def test_robust_accuracy_gives_the_same_rows_on_any_split_of_the_images():
    from semlib.robust import RobustConfig, evaluate

    sem, (x, y, ids) = _sem(), _images(10)
    cfg = RobustConfig(eps=0.15, steps=3, eot=2, targets=2, votes=2, judge=JudgeConfig(n=20, alpha=0.3))
    run = lambda s: evaluate(sem, sem, x[s], y[s], cfg, Streams(6, ids[s]), ids=ids[s].numpy())  # noqa: E731
    whole, parts = run(slice(0, 10)), [run(slice(0, 4)), run(slice(4, 10))]
    for col in ("clean_correct", "robust", "broken_by", "gradients", "judge_draws"):
        assert whole[col].tolist() == parts[0][col].tolist() + parts[1][col].tolist(), col
    assert 0 < whole.robust.sum() < whole.clean_correct.sum()  # some broken, some not: a real comparison


def test_a_sem_gets_chunk_times_fanout_rows_per_pass():
    """The SEM routes each row to E[K] of its M sub-models: the judge and EOT passes give it
    ``chunk * M / E[K]`` rows (gradients at most 4x), so each sub-model still sees about a chunk."""
    sem, (x, y, ids) = _sem(), _images(6)
    assert len(sem.names) == 7 and sem.fanout == round(7 / 2)  # E[K] = 2 for K uniform on 1..3
    sizes = []
    sem.register_forward_pre_hook(lambda m, args: sizes.append(len(args[0])))
    judge(sem, x, y, None, JudgeConfig(n=40, alpha=0.3, chunk=5), Streams(0, ids))
    assert max(sizes) == 5 * sem.fanout
    from semlib.attacks.gradient import eot_gradient

    sizes.clear()
    eot_gradient(sem, x, y, eot=8, chunk=3, generator=Streams(0, ids))
    assert max(sizes) == 3 * min(sem.fanout, 4) and sum(sizes) == 6 * 8
