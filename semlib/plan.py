"""What a pipeline run will do and about how long it will take on this machine.

``python -m semlib.pipeline`` (``make reproduce``) prints this before the first notebook runs;
``--plan`` prints it and stops. The estimate scales each notebook's last finished run of the
preset by the speed of the machine it ran on: every run records in its ``metrics.json`` its wall
time and a **machine score** (:func:`machine_score`: images per second of a fixed
forward + input-gradient workload, the kind of work attacks and votes do, measured in about a
second). Here ``estimate = reference wall time x reference score / this machine's score``.

What the estimate does not know, it says: a notebook without a finished run of the preset (or
whose run predates the score) gets no number; one whose parameters changed since that run is
flagged, its number scaled by the change in images where that is the only change; one whose last
run reused results of earlier runs from the cache (``metrics.json`` ``cache_reuse``) gives a lower
bound, marked ``>=``. Curves already in the cache make the real run shorter.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import layout
from .artifacts import SCORE_ENV  # noqa: F401  (the pipeline hands its score to the kernels through it)
from .params import load_params



def machine_score(seconds: float = 1.0, batch: int = 64, repeats: int = 5) -> float:
    """Images per second of a fixed small convolutional network's forward pass and input
    gradient at ``batch`` (fp32, the threads torch uses now): the best of ``repeats`` timings of
    about ``seconds / repeats`` each (the best is the least disturbed by other work)."""
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(128, 10))
    x = torch.rand(batch, 3, 32, 32, generator=g).requires_grad_(True)

    def step() -> None:
        torch.autograd.grad(net(x).logsumexp(1).sum(), x)

    step()  # warm-up: first-call allocations and kernel selection
    best = 0.0
    for _ in range(repeats):
        images, start = 0, time.perf_counter()
        while True:
            step()
            images += batch
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / repeats:
                break
        best = max(best, images / elapsed)
    return best


@dataclass
class Step:
    """One notebook of the plan: its reference run and the estimate drawn from it."""

    notebook: str
    estimate: float | None  # seconds on this machine, None when there is nothing to scale
    reference_seconds: float | None = None
    reference_cpu: str | None = None
    note: str = ""
    lower_bound: bool = False  # the reference run reused earlier results: a cold run takes longer


def _comparable(value):  # parameters as JSON reads them back (tuples become lists)
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def step(notebook: str | Path, preset: str, root: str | Path, score: float) -> Step:
    """The plan for one notebook: its last finished run of ``preset`` scaled to ``score``."""
    name, root = Path(notebook).stem, Path(root)
    metrics_file = root / "outputs" / name / preset / "metrics.json"
    if not metrics_file.is_file():
        return Step(name, None, note="no finished run of this preset to scale: no estimate")
    try:
        record = json.loads(metrics_file.read_text())
    except ValueError:
        return Step(name, None, note=f"{metrics_file} is not readable JSON: no estimate")
    wall, host = record.get("wall_seconds"), record.get("host", {})
    ref_score, cpu = host.get("machine_score"), host.get("cpu_capability")
    if wall is None or not ref_score:
        return Step(name, None, wall, cpu, "its last run recorded no machine score (older than the estimate): "
                                           "no estimate")
    estimate, note = wall * ref_score / score, ""
    now = {**load_params(name, preset, root), "PRESET": preset}
    then = record.get("params", {})
    changed = sorted(k for k in now if k in then and _comparable(now[k]) != _comparable(then[k]))
    if changed:
        note = f"parameters changed since that run ({', '.join(changed)}): rough"
        study_now, study_then = dict(now.get("STUDY", {})), dict(then.get("STUDY", {}))
        images_now, images_then = study_now.pop("n_images", None), study_then.pop("n_images", None)
        if changed == ["STUDY"] and _comparable(study_now) == _comparable(study_then) and images_now and images_then:
            estimate *= images_now / images_then
            note = f"images {images_then} -> {images_now} since that run: scaled"
    reuse = record.get("cache_reuse") or {}
    earlier = reuse.get("from_earlier_runs", 0)
    if earlier:
        note = "; ".join(filter(None, [note, f"that run reused {earlier} of {reuse.get('results_read')} results "
                                             "from earlier runs: a lower bound"]))
    return Step(name, estimate, wall, cpu, note, lower_bound=bool(earlier))


def plan(notebooks: list[str | Path], preset: str, root: str | Path, score: float) -> list[Step]:
    return [step(nb, preset, root, score) for nb in notebooks]


def duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def describe(steps: list[Step], preset: str, score: float) -> str:
    """The plan as lines for the terminal: what runs, the estimate per notebook and in total."""
    lines = [f"[semlib] plan: {len(steps)} notebook(s), preset {preset}; this machine: "
             f"{layout.cpu_capability()}, {torch.get_num_threads()} threads, score {score:.0f} images/s"]
    for s in steps:
        left = f"{'>=' if s.lower_bound else '~'}{duration(s.estimate)}" if s.estimate is not None else "?"
        ref = f" (last run {duration(s.reference_seconds)} on {s.reference_cpu or 'an unrecorded CPU'})" \
            if s.reference_seconds else ""
        lines.append(f"  {s.notebook:<24} {left:>9}{ref}{'; ' + s.note if s.note else ''}")
    known = [s.estimate for s in steps if s.estimate is not None]
    bound = ">=" if any(s.lower_bound for s in steps) else "~"
    total = f"{bound}{duration(sum(known))}" if known else "unknown"
    unknown = len(steps) - len(known)
    lines.append(f"  total {total}{f' plus {unknown} notebook(s) without an estimate' if unknown and known else ''}"
                 " (from an empty curve cache; cached curves are reused)")
    return "\n".join(lines)
