"""Baseline defenses of the paper's Fig. 3 besides ensemble smoothing: RSE and ADP.

* RSE — random self-ensemble (Liu et al. 2018): Gaussian noise layers before the convolutions
  (``init_sigma`` before the first, ``inner_sigma`` before the others), active in training and
  at inference; the prediction averages the softmax of ``passes`` noisy passes.
* ADP — adaptive diversity promoting regularizer (Pang et al. 2019) for training an ensemble:
  the members' cross-entropies, minus ``alpha`` times the entropy of the ensemble's mean
  prediction, minus ``beta`` times ``log(det(M^T M) + delta)`` where the columns of M are the
  members' *non-maximal* predictions (the probability vector without the true class),
  normalized to unit length — the ensemble diversity.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import device as devices, artifacts, layout
from .ensemble import Ensemble
from .streams import bind, randn
from .data import eval_subset, load_split
from .training import TrainConfig, accuracy, train
from .zoospec import BaselineSpec, ZooSpec


class RSE(nn.Module):
    """RSE around a zoo model; a stochastic classifier ``forward(x, generator) -> logits``
    (log of the mean softmax over ``passes`` noisy passes).

    The noise layers are forward pre-hooks on ``base``'s convolutions: ``base`` belongs to the
    RSE from then on (train it through the RSE; called alone it is noisy too). The noise comes
    from the ``generator`` of the call, else from the RSE's own generator (:meth:`seed`), else
    from torch's global one.
    """

    def __init__(self, base: nn.Module, init_sigma: float = 0.2, inner_sigma: float = 0.1, passes: int = 1):
        super().__init__()
        if init_sigma < 0 or inner_sigma < 0 or passes < 1:
            raise ValueError(f"need sigmas >= 0 and passes >= 1, got {init_sigma}, {inner_sigma}, {passes}")
        self.base, self.passes = base, passes
        self.init_sigma, self.inner_sigma = init_sigma, inner_sigma
        self._generators: dict[int, torch.Generator] = {}  # thread -> its call's generator (curves run together)
        self._own: torch.Generator | None = None  # for calls without a generator (training): seed()
        convs = [m for m in base.modules() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError("RSE needs a model with convolutions")
        for i, conv in enumerate(convs):
            conv.register_forward_pre_hook(self._noise_hook(init_sigma if i == 0 else inner_sigma))

    def _noise_hook(self, sigma: float):
        def hook(module, args):
            (x,) = args
            if sigma == 0:
                return None
            generator = self._generators.get(threading.get_ident(), self._own)
            noise = randn(x.shape, generator, device=x.device, dtype=x.dtype)
            return (x + sigma * noise,)

        return hook

    def seed(self, seed: int) -> "RSE":
        """Draw the noise of calls without a generator (training, accuracy) from a generator
        seeded ``seed`` on the model's device, not from torch's global one."""
        device = next(self.base.parameters()).device
        self._own = torch.Generator(device=device).manual_seed(seed)
        return self

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        thread = threading.get_ident()
        if generator is not None:  # a request's layers draw from its one stream, in turn
            self._generators[thread] = bind(generator, len(x))
        try:
            if self.passes == 1:
                return self.base(x)
            probs = torch.stack([self.base(x).softmax(1) for _ in range(self.passes)]).mean(0)
            return probs.clamp_min(1e-12).log()
        finally:
            self._generators.pop(thread, None)


def adp_loss(logits: list[torch.Tensor] | torch.Tensor, y: torch.Tensor, alpha: float = 2.0, beta: float = 0.5,
             delta: float = 1e-20) -> torch.Tensor:
    """The ADP training loss (mean over the batch).

    Parameters
    ----------
    logits : K member outputs, each ``[B, C]`` (or a tensor ``[K, B, C]``)
    y : ``[B]`` labels
    alpha, beta, delta : weights of the ensemble entropy and of the log ensemble diversity,
        and the diversity's floor (Pang et al.: 2, 0.5, 1e-20)
    """
    z = (torch.stack(list(logits)) if not isinstance(logits, torch.Tensor) else logits).float()
    k, b, c = z.shape
    if k < 2:
        raise ValueError(f"ADP needs at least 2 ensemble members, got {k}")
    ce = sum(F.cross_entropy(z[i], y) for i in range(k))
    p = z.softmax(-1)  # [K, B, C]
    mean = p.mean(0)
    entropy = -(mean * mean.clamp_min(1e-20).log()).sum(-1).mean()
    keep = torch.ones(b, c, dtype=torch.bool, device=z.device)
    keep[torch.arange(b, device=z.device), y] = False
    non_max = p[:, keep].view(k, b, c - 1).permute(1, 2, 0)  # [B, C-1, K]
    non_max = non_max / non_max.norm(dim=1, keepdim=True).clamp_min(1e-20)
    with torch.autocast(z.device.type, enabled=False):  # det has no bf16 kernel
        gram = non_max.transpose(1, 2) @ non_max  # [B, K, K]
        log_det = torch.log(torch.linalg.det(gram) + delta).mean()
    return ce - alpha * entropy - beta * log_det


class ADPEnsemble(Ensemble):
    """The ADP-trained ensemble: plain members, logits summed (deterministic at inference)."""

    def member_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [m(x) for m in self.members]


def _adp_members(spec: BaselineSpec, zoo_spec: ZooSpec) -> list[nn.Module]:
    return [zoo_spec.submodel(a, 0.0).build() for a in spec.members]


def build_baseline(which: str, spec: BaselineSpec, zoo_spec: ZooSpec) -> nn.Module:
    """An untrained RSE or ADP model of the shape ``spec`` describes."""
    if which == "rse":
        r = spec.rse
        return RSE(zoo_spec.submodel(r.get("arch", spec.members[0]), 0.0).build(), r.get("init_sigma", 0.2),
                   r.get("inner_sigma", 0.1), r.get("passes", 1))
    if which == "adp":
        return ADPEnsemble(_adp_members(spec, zoo_spec), names=spec.members)
    raise ValueError(f"unknown baseline {which!r}; known: rse, adp")


def train_baselines(zoo_spec: ZooSpec, zoo_dir: str | os.PathLike, data_dir=None, *, retrain: bool = False,
                    progress: bool = True, device: str | torch.device | None = None) -> pd.DataFrame:
    """Train (or reuse) RSE and ADP into ``<zoo_dir>/baselines/``, each fine-tuned from the zoo's
    unsmoothed models; returns one row per baseline (name, clean_accuracy, train_seconds, ...).
    Reuse follows the zoo's rule: the card must record the same recipe and parents' hashes.
    ``device``: where to train (:func:`semlib.device.resolve`; None: auto)."""
    if zoo_spec.baselines is None:
        raise ValueError(f"zoo {zoo_spec.name} defines no baselines; add a 'baselines:' entry to its YAML")
    spec = BaselineSpec.from_dict(zoo_spec.baselines, zoo_spec)
    zoo_dir = Path(zoo_dir)
    dev = devices.resolve(device)
    rows = []
    for which in ("rse", "adp"):
        path = zoo_dir / "baselines" / f"{which}.safetensors"
        cfg, archs, parents, recipe = _plan(which, spec, zoo_spec, zoo_dir)
        card = artifacts.read_card(path)
        if retrain or card is None or card.get("recipe") != recipe:
            model = build_baseline(which, spec, zoo_spec)
            bases = [model.base] if which == "rse" else list(model.members)
            for base, a in zip(bases, archs):
                artifacts.load_weights(base, parents[a])
            model.to(dev)
            train_data = load_split("train", data_dir)
            loss_fn = None
            if which == "adp":
                a_, b_ = spec.adp.get("alpha", 2.0), spec.adp.get("beta", 0.5)
                loss_fn = lambda m, xb, yb: adp_loss(m.member_logits(xb), yb, a_, b_)  # noqa: E731
            if which == "rse":
                model.seed(cfg.seed)
            result = train(model, train_data.x, train_data.y, cfg, progress=progress, desc=which, loss_fn=loss_fn)
            x, y, _ = eval_subset(zoo_spec.eval_config().n_test, data_dir)
            artifacts.as_stored(model)  # the card describes the shipped fp16 weights
            if which == "rse":
                model.seed(0)
            acc = accuracy(model, x, y)
            card = artifacts.save_checkpoint(model, path, {
                "name": which, "recipe": recipe, "clean_accuracy": acc, "n_test": len(y),
                "train_seconds": round(result.seconds, 1), "train_losses": [round(v, 4) for v in result.losses],
                "torch": torch.__version__, "device": devices.describe(dev),
                "cpu_capability": layout.cpu_capability()})
        rows.append({"name": which, "members": ",".join(archs), "clean_accuracy": card["clean_accuracy"],
                     "train_seconds": card["train_seconds"], "epochs": cfg.epochs})
    return pd.DataFrame(rows)


def _plan(which: str, spec: BaselineSpec, zoo_spec: ZooSpec, zoo_dir: Path
          ) -> tuple[TrainConfig, list[str], dict[str, Path], dict[str, Any]]:
    """A baseline's training config, member architectures, parent checkpoints and recipe."""
    cfg = spec.train_config(zoo_spec, which)
    archs = [spec.rse.get("arch", spec.members[0])] if which == "rse" else list(spec.members)
    parents = {a: zoo_dir / f"{zoo_spec.submodel(a, 0.0).name}.safetensors" for a in archs}
    parent_sha = {}
    for a, p in parents.items():
        card = artifacts.read_card(p)
        if card is None:
            raise artifacts.CheckpointError(f"baseline {which} starts from {p.name}, which is not trained; run 01_zoo first")
        parent_sha[a] = card["sha256"]
    return cfg, archs, parents, baseline_recipe(which, spec, cfg, parent_sha)


def baseline_recipe(which: str, spec: BaselineSpec, cfg: TrainConfig, parent_sha: dict[str, str]
                    ) -> dict[str, Any]:
    """What a trained baseline's card must record to be reused: only what shapes that baseline
    (editing ADP's settings leaves RSE trained, and back), its training and its parents' hashes."""
    own = ({"rse": {**spec.rse, "arch": spec.rse.get("arch", spec.members[0])}} if which == "rse"
           else {"members": spec.members, "adp": spec.adp})
    return {"which": which, "spec": own, "train": cfg.to_dict(), "parents": parent_sha}


def load_baseline(which: str, zoo_spec: ZooSpec, zoo_dir: str | os.PathLike) -> nn.Module:
    """A trained RSE or ADP baseline (fp32, eval mode), hash-checked."""
    path = Path(zoo_dir) / "baselines" / f"{which}.safetensors"
    card = artifacts.read_card(path)
    if card is None:
        raise artifacts.CheckpointError(f"no trained baseline {which!r} in {path.parent}; run notebook 02_baselines "
                                 f"(it trains them)")
    spec = BaselineSpec.from_dict(zoo_spec.baselines, zoo_spec)
    if card.get("recipe") != _plan(which, spec, zoo_spec, Path(zoo_dir))[3]:
        raise artifacts.CheckpointError(f"card {artifacts.card_path(path)} records another recipe than zoo {zoo_spec.name} asks "
                                 f"for (edited card, or spec changed since training); retrain: run notebook "
                                 f"02_baselines")
    return artifacts.load_weights(build_baseline(which, spec, zoo_spec), path).eval()
