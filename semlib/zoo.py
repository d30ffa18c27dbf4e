"""The zoo: every (architecture, sigma) sub-model of a preset, trained once, cached, tabulated.

A zoo is described by a YAML spec (``params/zoo/<preset>.yaml``, read by :mod:`semlib.zoospec`).

Each sub-model is saved as ``<zoo_dir>/<arch>_s<sigma>.safetensors`` plus its JSON card; the
card is written last, so an interrupted :func:`train_zoo` resumes with the first model whose
card is missing (or whose recorded configuration differs from the spec).
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

import pandas as pd
import torch
from tqdm.auto import tqdm

from . import device as devices, artifacts, layout, runner
from .data import eval_subset, find_data_dir, load_split
from .models import family_of
from .smoothing import NoisyClassifier, certify
from .training import TrainConfig, accuracy, train
# the spec, re-exported: zoo.load_spec and friends are how notebooks and tests reach it
from .zoospec import EvalConfig, SubModelSpec, ZooSpec, default_dir, load_spec  # noqa: F401

def _card_matches(card: dict[str, Any] | None, sub: SubModelSpec, cfg: TrainConfig, parent: str | None,
                  parent_sha: str | None) -> bool:
    """A finished checkpoint is reused only if it was trained exactly so, from the current parent."""
    return (card is not None and card.get("submodel") == asdict(sub) and card.get("train") == cfg.to_dict()
            and card.get("init_from") == parent and card.get("init_sha256") == parent_sha)


def train_zoo(spec: ZooSpec, zoo_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None, *,
              retrain: bool = False, progress: bool = True, only: Iterable[str] | None = None,
              executor=None, device: str | torch.device | None = None) -> pd.DataFrame:
    """Train (or reuse) every sub-model of ``spec`` into ``zoo_dir``; returns :func:`zoo_table`.

    A sub-model whose card records the same configuration is reused (so an interrupted run
    resumes); ``retrain=True`` trains everything again. ``only`` restricts to some names.
    With a local or Ray ``executor`` (:class:`semlib.runner.Executor`) every missing sub-model is a task:
    the unsmoothed ones first, then the ones fine-tuned from them. ``device``: where to train
    (:func:`semlib.device.resolve`; None: auto — a GPU when torch sees one, in each task).
    """
    dev = devices.resolve(device)  # a bad name fails before anything is written
    zoo_dir = Path(zoo_dir)
    zoo_dir.mkdir(parents=True, exist_ok=True)
    subs = [s for s in spec.submodels() if only is None or s.name in set(only)]
    if executor is not None and not executor.serial:
        _train_as_tasks(executor, spec, zoo_dir, data_dir, subs, progress, device, retrain)
        retrain = False  # the tasks (re)trained every sub-model; the loop below finds them current
    train_data = None
    bar = tqdm(subs, desc=f"zoo {spec.name}", disable=not progress)
    for sub in bar:
        bar.set_postfix_str(sub.name)
        if not retrain and _trained_as_specified(spec, sub, zoo_dir):
            continue
        path = zoo_dir / f"{sub.name}.safetensors"
        cfg, parent = spec.train_config(sub)
        parent_card = artifacts.read_card(zoo_dir / f"{parent}.safetensors") if parent else None
        parent_sha = parent_card["sha256"] if parent_card else None
        if train_data is None:
            train_data = load_split("train", data_dir)
        model = sub.build()
        if parent is not None:
            artifacts.load_weights(model, zoo_dir / f"{parent}.safetensors")
        model.to(dev)
        result = train(model, train_data.x, train_data.y, cfg, progress=progress, desc=sub.name)
        artifacts.as_stored(model)  # the card's numbers describe the fp16 weights that are shipped
        metrics = evaluate_submodel(model, sub, spec.eval_config(), data_dir)
        card = {
            "name": sub.name, "arch": sub.arch, "family": sub.family, "sigma": sub.sigma,
            "submodel": asdict(sub), "train": cfg.to_dict(), "init_from": parent, "init_sha256": parent_sha,
            "params": sum(p.numel() for p in model.parameters()),
            "train_seconds": round(result.seconds, 1), "train_images": result.images,
            "train_losses": [round(x, 4) for x in result.losses],
            "data_sha256": train_data.sha256(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "device": devices.describe(dev),
            "cpu_capability": layout.cpu_capability(), **metrics,
        }
        artifacts.save_checkpoint(model, path, card)
    return zoo_table(zoo_dir, [s.name for s in subs])


def _trained_as_specified(spec: ZooSpec, sub: SubModelSpec, zoo_dir: Path) -> bool:
    """Whether ``sub``'s checkpoint exists and its card records the spec's recipe and parent."""
    cfg, parent = spec.train_config(sub)
    parent_card = artifacts.read_card(zoo_dir / f"{parent}.safetensors") if parent else None
    return _card_matches(artifacts.read_card(zoo_dir / f"{sub.name}.safetensors"), sub, cfg, parent,
                         parent_card["sha256"] if parent_card else None)


def _train_as_tasks(executor, spec: ZooSpec, zoo_dir: Path, data_dir, subs: list[SubModelSpec], progress: bool,
              device: str | torch.device | None, retrain: bool) -> None:
    data = str(find_data_dir(data_dir))
    for wave in ([s for s in subs if spec.train_config(s)[1] is None], [s for s in subs if spec.train_config(s)[1]]):
        tasks = [(asdict(spec), str(zoo_dir.resolve()), data, s.name, devices.request(device), retrain)
                 for s in wave if retrain or not _trained_as_specified(spec, s, zoo_dir)]
        runner.run(train_task, tasks, executor, desc="sub-models", progress=progress)


def train_task(spec: dict[str, Any], zoo_dir: str, data_dir: str, name: str, device: str | None = None,
               retrain: bool = False) -> str:
    """One sub-model's training as a task (any process, e.g. a Ray worker, on the GPU Ray gave
    it if any); returns its name."""
    train_zoo(ZooSpec.from_dict(spec), zoo_dir, data_dir, only=[name], progress=False, device=device, retrain=retrain)
    return name


def evaluate_submodel(model: torch.nn.Module, sub: SubModelSpec, ev: EvalConfig,
                      data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Clean accuracy (fp32, no noise) and, for sigma > 0, ACA: Cohen's certify at radius 0
    (on the model's device)."""
    start = time.perf_counter()
    dev = next(model.parameters()).device
    x, y, _ = eval_subset(ev.n_test, data_dir)
    out: dict[str, Any] = {"clean_accuracy": accuracy(model, x, y, ev.batch_size), "n_test": ev.n_test}
    if sub.sigma > 0:
        xa, ya = x[: ev.aca_images].to(dev), y[: ev.aca_images]
        cert = certify(NoisyClassifier(model, sub.sigma, sub.noise_space), xa, sub.sigma, ev.n0, ev.n, ev.alpha,
                       batch_size=ev.batch_size, generator=devices.generator(dev, ev.seed))
        out.update(aca=float((cert.prediction.cpu() == ya).float().mean()), aca_images=len(ya), aca_n0=ev.n0,
                   aca_n=ev.n, aca_alpha=ev.alpha, abstain_rate=float((cert.prediction < 0).float().mean()))
    out["eval_seconds"] = round(time.perf_counter() - start, 1)
    return out


def zoo_table(zoo_dir: str | os.PathLike, names: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per finished sub-model in ``zoo_dir`` (from the cards): name, arch, family, sigma,
    clean_accuracy, aca, train_seconds, ... ."""
    zoo_dir = Path(zoo_dir)
    wanted = None if names is None else list(names)
    rows = []
    for card_file in sorted(zoo_dir.glob("*.json")):
        card = artifacts.read_card(card_file.with_suffix(".safetensors"))
        if card is None or (wanted is not None and card["name"] not in wanted):
            continue
        rows.append({k: card.get(k) for k in ("name", "arch", "family", "sigma", "clean_accuracy", "aca",
                                               "abstain_rate", "params", "train_seconds", "eval_seconds",
                                               "init_from")})
    cols = ["name", "arch", "family", "sigma", "clean_accuracy", "aca", "abstain_rate", "params",
            "train_seconds", "eval_seconds", "init_from"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["family", "arch", "sigma"]).reset_index(drop=True)


def table1(df: pd.DataFrame, sigmas: Iterable[float] | None = None) -> pd.DataFrame:
    """Paper Table 1 layout: one row per architecture; clean accuracy of the unsmoothed model
    and ACA per sigma, in percent."""
    clean = df[df.sigma == 0].set_index("arch").clean_accuracy.rename("clean")
    aca = df[df.sigma > 0].pivot_table(index="arch", columns="sigma", values="aca")
    if sigmas is not None:
        aca = aca.reindex(columns=[s for s in sigmas if s > 0])
    aca.columns = [f"aca_{s:g}" for s in aca.columns]
    out = pd.concat([clean, aca], axis=1) * 100
    out.insert(0, "family", [family_of(a) for a in out.index])
    out.index.name = "arch"
    return out.round(2).reset_index()


def admitted(df: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Sub-models kept in the collection: accuracy (ACA if smoothed, clean if not) >= ``threshold``.

    ``threshold`` is a fraction in [0, 1] (the paper dropped sub-models near chance, ~0.10).
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold is a fraction of correct images in [0, 1], got {threshold}")
    score = df.aca.where(df.sigma > 0, df.clean_accuracy)
    return df[score >= threshold].reset_index(drop=True)


def load_submodel(zoo_dir: str | os.PathLike, name: str, device: str | torch.device = "cpu",
                  expected: SubModelSpec | None = None) -> NoisyClassifier:
    """A trained sub-model as a :class:`NoisyClassifier` (fp32, eval mode), hash-checked; with
    ``expected`` (the zoo spec's sub-model), its card must describe exactly that model."""
    path = Path(zoo_dir) / f"{name}.safetensors"
    card = artifacts.read_card(path)
    if card is None:
        have = sorted(p.stem for p in Path(zoo_dir).glob("*.safetensors"))
        raise artifacts.CheckpointError(f"no finished sub-model {name!r} in {zoo_dir}; have: {have or 'none'} — "
                                 f"train the zoo first (make zoo)")
    try:
        sub = SubModelSpec(**card["submodel"])
    except (KeyError, TypeError) as e:
        raise artifacts.CheckpointError(f"card {artifacts.card_path(path)} has no valid 'submodel' entry ({e}); delete it and the "
                                 f"weights, then retrain (make zoo)") from None
    if expected is not None and sub != expected:
        raise artifacts.CheckpointError(f"card {artifacts.card_path(path)} describes {asdict(sub)}, but the zoo spec asks for "
                                 f"{asdict(expected)} (edited card, or spec changed since training); retrain: make zoo")
    model = artifacts.load_weights(sub.build(), path).to(device).eval()
    return NoisyClassifier(model, sub.sigma, sub.noise_space).eval()
