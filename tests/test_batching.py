"""Batched network calls across computations run together (semlib.batching): the same outputs
and input gradients as calls made alone, bigger batches, results that do not depend on thread
timing, errors that reach the caller without a hang; whole eps searches (BIM, PGD, APGD, NES,
attackers A and B, contrast F) give exactly the same rows together as alone on models whose
logits need no floating-point sums."""
import random
import time
from collections import Counter

import pytest
import torch
from torch import nn

from semlib.attacks import APGD, BIM, NES, PGD
from semlib.batching import Counts, call_networks, run_together
from semlib.cache import cached_split
from semlib.curves import SearchConfig, search_distortion
from semlib.ensemble import Ensemble, HeldDraws
from semlib.judge import JudgeConfig
from semlib.smoothing import NoisyClassifier
from semlib.streams import Streams
from semlib.study import Study
from test_streams import Pixels, _images, _sem

pytestmark = pytest.mark.timeout(300)  # a scheduling bug would hang: fail instead


def _nets(n=3, seed=0):
    torch.manual_seed(seed)
    return [nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16, 5)).eval()
            for _ in range(n)]


def _task(nets, x, i, jitter=False):
    """Two bundles with gradients (one used twice before its backward), then one without."""
    def run():
        if jitter:
            time.sleep(random.random() / 50)
        xi = x.clone().requires_grad_(True)
        a, b = call_networks([(nets[i % 3], 2 * xi), (nets[(i + 1) % 3], xi[:2])])
        (c,) = call_networks([(nets[(i + 2) % 3], xi.flip(0))])  # a second bundle before any backward
        loss = a.square().sum() + b.sum() + (c * a).sum()
        (g,) = torch.autograd.grad(loss, xi)
        if jitter:
            time.sleep(random.random() / 50)
        with torch.no_grad():
            (d,) = call_networks([(nets[0], xi)])
        return g, d
    return run


def test_batched_calls_match_calls_made_alone():
    nets = _nets()
    xs = [torch.rand(3 + i, 3, 4, 4) for i in range(6)]
    counts = Counts()
    together = run_together([_task(nets, x, i) for i, x in enumerate(xs)], counts)
    alone = [_task(nets, x, i)() for i, x in enumerate(xs)]
    for (g, d), (g0, d0) in zip(together, alone):
        torch.testing.assert_close(g, g0, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(d, d0, rtol=1e-5, atol=1e-6)
        assert g.abs().sum() > 0
    # 6 tasks x 4 network calls; rounds: two bundles with gradients (3 nets each), their two
    # backwards (no forward call), one bundle without (1 net): every net called once per round
    assert counts.rounds == 5 and len(counts.rows) == 7 and sum(counts.rows) == sum(3 * len(x) + 2 for x in xs)
    assert max(counts.rows) > max(len(x) for x in xs)


def test_results_do_not_depend_on_thread_timing():
    nets = _nets()
    xs = [torch.rand(2 + i, 3, 4, 4) for i in range(5)]
    random.seed(0)
    first = run_together([_task(nets, x, i, jitter=True) for i, x in enumerate(xs)])
    second = run_together([_task(nets, x, i, jitter=True) for i, x in enumerate(xs)])
    assert all(torch.equal(a, b) for r, s in zip(first, second) for a, b in zip(r, s))


def test_a_task_error_reaches_the_caller_and_the_others_finish():
    nets, done = _nets(), []

    def bad():
        call_networks([(nets[0], torch.rand(2, 3, 4, 4))])
        raise ValueError("task 1 failed")

    def good():
        for _ in range(3):
            call_networks([(nets[1], torch.rand(2, 3, 4, 4))])
        done.append(1)

    with pytest.raises(ValueError, match="task 1 failed"):
        run_together([good, bad, good])
    assert done == [1, 1]
    with pytest.raises(RuntimeError, match="mat1 and mat2|shape"):  # a network's error reaches its caller
        run_together([lambda: call_networks([(nets[0], torch.rand(2, 3, 5, 5))]), good])


def _curve(attack, model, x, y, ids, target=None, judge_model=None):
    return lambda: search_distortion(attack, model, judge_model or model, x, y, target,
                                     search=SearchConfig(eps0=0.05, search_steps=4, binary_steps=2),
                                     judge=JudgeConfig(n=20, alpha=0.3, chunk=5), generator=Streams(11, ids),
                                     ids=ids.numpy())


def test_whole_searches_are_the_same_together_and_alone():
    sem, (x, y, ids) = _sem(), _images(8)
    members = [NoisyClassifier(Pixels(3.0), 0.1), NoisyClassifier(Pixels(2.0), 0.2), NoisyClassifier(Pixels(4.0), 0.0)]
    f = Ensemble(members)
    target = (y + 1) % 10
    curves = [_curve(BIM(steps=3, eot=2, chunk=4), HeldDraws(sem, period=1), x, y, ids, judge_model=sem),
              _curve(PGD(steps=3, eot=2, chunk=3), HeldDraws(sem, period=2), x, y, ids, target, judge_model=sem),
              _curve(APGD(steps=4, eot=2, chunk=3), sem, x, y, ids),
              _curve(NES(max_queries=40, samples=4), sem, x, y, ids),
              _curve(BIM(steps=3, eot=2), f, x, y, ids)]
    alone, counts = [c() for c in curves], Counts()
    each = [run_together([c], counts)[0] for c in curves]  # one at a time, counted
    rows, calls = sum(counts.rows), len(counts.rows)
    counts = Counts()
    together = run_together(curves, counts)
    for a, b, c in zip(alone, together, each):
        assert a.equals(b) and a.equals(c)
    assert all(a.distortion.notna().any() for a in alone)
    assert sum(counts.rows) == rows  # the same work, in fewer and bigger calls
    assert len(counts.rows) < 0.75 * calls  # (the longest curve, NES, sets the number of rounds)


def test_each_call_keeps_its_threads_autocast_and_grad_mode():
    nets, x = _nets(), torch.rand(2, 3, 4, 4)

    def cast():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return call_networks([(nets[0], x)])[0]

    def plain():
        with torch.no_grad():
            return call_networks([(nets[0], x)])[0]

    low, full = run_together([cast, plain])
    assert low.dtype == torch.bfloat16 and full.dtype == torch.float32 and not full.requires_grad
    torch.testing.assert_close(low.float(), full, rtol=0.05, atol=0.05)


class _Study:
    """What certification.per_model reads of a study, around the exact test models."""

    blocks = Study.blocks

    def __init__(self, x, y, ids, cache_dir, together, block=100, shard_size=6):
        self.x, self.y, self.ids, self.cache_dir = x, y, ids, cache_dir
        self.cfg = type("Cfg", (), {"together": together, "block": block, "curve_fields": lambda self: {"n": 20}})()
        self.computed_on, self.device, self.shard_size = {}, torch.device("cpu"), shard_size

    def shards(self):
        return [slice(s, min(len(self.y), s + self.shard_size)) for s in range(0, len(self.y), self.shard_size)]

    def checkpoints(self, model):
        return {"model": "exact"}


def test_robust_rows_of_several_defenses_are_the_same_together_and_alone(tmp_path):
    from semlib.certification import per_model
    from semlib.robust import RobustConfig, evaluate

    sem, (x, y, ids) = _sem(), _images(10)
    f = Ensemble([sem.members[0], sem.members[2], sem.members[4]])  # F shares the SEM's networks
    cfg = RobustConfig(eps=0.15, steps=3, eot=2, targets=2, votes=2, judge=JudgeConfig(n=20, alpha=0.3))
    rows = {}
    for together in (False, True):
        study = _Study(x, y, ids, tmp_path / str(together), together, block=1, shard_size=5)
        compute = lambda m, sl, gen, s=study: evaluate(m, m, s.x[sl], s.y[sl], cfg, gen, ids=s.ids[sl].numpy())  # noqa: E731
        rows[together] = per_model(study, {"SEM": sem, "F": f, "G": sem.members[3]}, lambda label: {"robust": label},
                                   compute, "robust", False, streams=True)
    assert rows[True].equals(rows[False]) and len(rows[True]) == 30
    assert 0 < rows[True].robust.sum() < rows[True].clean_correct.sum()
    assert len(list((tmp_path / "True").glob("*.csv"))) == 6  # each model and shard cached


def test_robust_rows_do_not_depend_on_the_block_and_a_block_reads_what_is_cached(tmp_path):
    """StudyConfig.block: the uncached shards of a block are computed in one call over their span
    and cached shard by shard; every draw is the image's own, so on exact models the rows and the
    cached CSVs are the same as shard by shard, and a shard already cached is read, not redone."""
    from semlib.certification import per_model
    from semlib.robust import RobustConfig, evaluate

    sem, (x, y, ids) = _sem(), _images(12)
    models = {"SEM": sem, "G": sem.members[3]}
    cfg = RobustConfig(eps=0.15, steps=3, eot=2, targets=2, votes=2, judge=JudgeConfig(n=20, alpha=0.3))
    calls = []

    def rows(name, block, shards=None):
        study = _Study(x, y, ids, tmp_path / name, True, block=block, shard_size=3)

        def compute(m, sl, gen):
            calls.append((name, sl.start, sl.stop))
            return evaluate(m, m, x[sl], y[sl], cfg, gen, ids=ids[sl].numpy())
        return per_model(study, models, lambda label: {"robust": label}, compute, "robust", False, streams=True,
                         shards=shards)

    alone, whole = rows("alone", 1), rows("whole", 6)
    assert Counter(calls) == Counter({("alone", s, s + 3): 2 for s in (0, 3, 6, 9)} | {("whole", 0, 6): 2, ("whole", 6, 12): 2})
    assert whole.equals(alone) and 0 < whole.robust.sum() < whole.clean_correct.sum()
    csvs = {d: {p.name: p.read_bytes() for p in (tmp_path / d).glob("*.csv")} for d in ("alone", "whole")}
    assert csvs["alone"] == csvs["whole"] and len(csvs["whole"]) == 8  # each model and shard of 3 cached
    calls.clear()
    rows("part", 12, shards=[slice(6, 9)])  # an earlier run cached the third shard
    kept = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "part").glob("*.csv")}
    again = rows("part", 12)
    assert Counter(calls) == Counter({("part", 0, 12): 2, ("part", 6, 9): 2})  # per model: the missing shards' span, once
    assert again.equals(alone) and {k: (tmp_path / "part" / k).stat().st_mtime_ns for k in kept} == kept
    five = _Study(x, y, ids, tmp_path, True, block=5, shard_size=2)
    assert five.blocks([slice(s, s + 2) for s in range(0, 12, 2)]) \
        == [[slice(0, 2), slice(2, 4), slice(4, 6)], [slice(6, 8), slice(8, 10)], [slice(10, 12)]]  # by start's window
    assert five.blocks([slice(0, 2), slice(4, 6), slice(6, 8)]) == [[slice(0, 2)], [slice(4, 6)], [slice(6, 8)]]  # and runs
    with pytest.raises(RuntimeError, match="images 6..8 are neither cached nor computed"):
        cached_split({"k": 1}, [slice(6, 9)], None, None, tmp_path / "empty")


def test_a_model_with_per_call_state_runs_in_several_curves_at_once():
    """RSE keeps its call's generator for its noise layers: one per thread, so curves that
    share the RSE (its BIM, MIM and PGD panels) run together."""
    from semlib.baselines import RSE

    class Pause(nn.Module):  # lets the other threads run between the two noise layers
        def forward(self, x):
            time.sleep(0.002)
            return x

    torch.manual_seed(0)
    rse = RSE(nn.Sequential(nn.Conv2d(3, 4, 3), Pause(), nn.Conv2d(4, 4, 3), nn.Flatten(),
                            nn.Linear(4 * 28 * 28, 10)).eval())
    x, ids = torch.rand(6, 3, 32, 32), torch.arange(6)

    def task(seed):
        return lambda: [rse(x, Streams(seed, ids)) for _ in range(20)]

    alone = [task(s)() for s in range(4)]
    together = run_together([task(s) for s in range(4)])
    assert all(torch.equal(a, b) for r, t in zip(alone, together) for a, b in zip(r, t))
    assert not torch.equal(alone[0][0], alone[1][0])


def test_an_interrupt_of_the_caller_releases_every_thread(monkeypatch):
    """A KeyboardInterrupt while the scheduler serves (Ctrl-C in a notebook) reaches the caller;
    no task thread is left waiting forever."""
    import threading

    from semlib import batching

    nets, started = _nets(), threading.Event()

    def task():
        started.set()
        for _ in range(1000):
            call_networks([(nets[0], torch.rand(2, 3, 4, 4))])

    def interrupted(self, batch):
        raise KeyboardInterrupt

    monkeypatch.setattr(batching.Scheduler, "_execute", interrupted)
    before = threading.active_count()
    with pytest.raises(KeyboardInterrupt):
        run_together([task, task])
    for _ in range(100):
        if threading.active_count() == before:
            break
        time.sleep(0.01)
    assert started.is_set() and threading.active_count() == before
