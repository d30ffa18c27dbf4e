"""The checkpoints of one zoo as loaded models: each sub-model and baseline is loaded once (fp32,
hash-checked against its card, on one device, frozen: no weight gradient is ever computed; a
sub-model's BatchNorm folded into the convolution before it, :func:`semlib.layout.fold_batchnorm`) and remembered with its card's fingerprint, so a
result can be keyed by the checkpoints its models use and retraining one model recomputes only
the results that use it."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import artifacts, layout, zoo
from .baselines import load_baseline
from .smoothing import NoisyClassifier
from .zoospec import ZooSpec


class Checkpoints:
    """Loaded models of the zoo ``spec`` trained into ``zoo_dir``, on ``device``."""

    def __init__(self, spec: ZooSpec, zoo_dir: Path, device: torch.device):
        self.spec, self.zoo_dir, self.device = spec, Path(zoo_dir), device
        self._loaded: dict[str, nn.Module] = {}  # name (as under zoo_dir) -> model
        self._owner: dict[int, str] = {}  # id(module holding the weights) -> name
        self._fingerprint: dict[str, str | None] = {}  # name -> card fingerprint

    def submodel(self, name: str) -> NoisyClassifier:
        """A sub-model by name (``<arch>_s<sigma>``); its card must describe the zoo spec's model."""
        if name not in self._loaded:
            expected = {s.name: s for s in self.spec.submodels()}.get(name)
            model = zoo.load_submodel(self.zoo_dir, name, self.device, expected)
            layout.fold_batchnorm(model.base.eval())  # evaluation only: one layer less per conv-BN pair
            model.requires_grad_(False)  # no weight gradient: layout.channels_last keeps no layer NCHW
            self._remember(name, model, lambda m: m.base)
        return self._loaded[name]

    def baseline(self, name: str) -> nn.Module:
        """A trained Fig. 3 baseline by name (``RSE``, ``ADP``)."""
        key = f"baselines/{name.lower()}"
        if key not in self._loaded:
            model = load_baseline(name.lower(), self.spec, self.zoo_dir).to(self.device).requires_grad_(False)
            self._remember(key, model, lambda m: m)
        return self._loaded[key]

    def _remember(self, name: str, model: nn.Module, weights) -> None:
        self.fingerprints([name])
        self._loaded[name] = model
        self._owner[id(weights(model))] = name

    def fingerprints(self, names: list[str]) -> dict[str, str | None]:
        """name -> card fingerprint of the checkpoints ``names``, read from their cards without
        loading any weights (None: not trained yet; loading it then says what is missing)."""
        for name in names:
            if self._fingerprint.get(name) is None:
                card = artifacts.read_card(self.zoo_dir / f"{name}.safetensors")
                self._fingerprint[name] = artifacts.card_fingerprint(card) if card else None
        return {n: self._fingerprint[n] for n in sorted(names)}

    def of(self, *models: nn.Module) -> dict[str, str]:
        """The checkpoints (name -> card fingerprint) whose weights ``models`` use."""
        names = sorted({self._owner[id(m)] for model in models for m in model.modules() if id(m) in self._owner})
        if not names:
            raise RuntimeError("no loaded checkpoint found in the given models: build them from this study's "
                               "submodel() or baseline()")
        return self.fingerprints(names)
