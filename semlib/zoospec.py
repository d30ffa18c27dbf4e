"""What a zoo is, as data: its sub-models (architecture, size, sigma, noise space), their
training and evaluation recipes and its Fig. 3 baselines (RSE, ADP, the members of F and H).

A zoo is described by a YAML spec (``params/zoo/<preset>.yaml``)::

    name: laptop
    noise_space: pixel            # or "normalized" (see semlib.smoothing)
    sigmas: [0.0, 0.25, 0.75, 1.5]
    models:                       # every Table-1 family, shrunk by width/depth/stem_stride
      - {arch: resnet18, width: 0.25, stem_stride: 2}
      - {arch: alexnet, width: 0.25, train: {lr: 0.04}}   # per-model recipe overrides
    train: {epochs: 5}            # TrainConfig of the unsmoothed models
    finetune: {epochs: 1.5}       # smoothed models start from the unsmoothed weights
                                  # (omit to train them from scratch with `train`)
    single_arch: {arch: wrn28_10, sigmas: [0.12, 0.15, 0.25, 0.5, 0.75, 1.0, 1.25]}  # optional
    evaluate: {n_test: 1000, aca_images: 200, n0: 16, n: 128, alpha: 0.001}

Training, loading and Table 1: :mod:`semlib.zoo`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .models import build_model, family_of
from .outputs import project_root
from .smoothing import check_sigma, noise_space
from .training import TrainConfig
from .yamlsafe import load_yaml

_SPEC_KEYS = {"name", "noise_space", "sigmas", "models", "train", "finetune", "single_arch", "evaluate", "seed",
              "baselines"}
_MODEL_KEYS = {"arch", "width", "depth", "stem_stride", "train"}
_ARCH_KEYS = ("arch", "width", "depth", "stem_stride")


@dataclass(frozen=True)
class SubModelSpec:
    """One sub-model of the zoo: an architecture at some size, trained at noise level ``sigma``."""

    arch: str
    sigma: float
    width: float = 1.0
    depth: float = 1.0
    stem_stride: int = 1
    noise_space: str = "pixel"

    def __post_init__(self) -> None:
        if self.sigma == 0:  # an unsmoothed model has no noise space; one card serves both
            object.__setattr__(self, "noise_space", "pixel")

    @property
    def name(self) -> str:
        return f"{self.arch}_s{self.sigma:g}"

    @property
    def family(self) -> str:
        return family_of(self.arch)

    def build(self) -> torch.nn.Module:
        return build_model(self.arch, width=self.width, depth=self.depth, stem_stride=self.stem_stride)

    def parent(self) -> "SubModelSpec":
        """The unsmoothed model of the same architecture (the fine-tuning start point)."""
        return SubModelSpec(self.arch, 0.0, self.width, self.depth, self.stem_stride, self.noise_space)


@dataclass
class EvalConfig:
    n_test: int = 1000  # test images for clean accuracy (jpeg fallbacks skipped)
    aca_images: int = 200  # test images for the approximated certified accuracy
    n0: int = 100
    n: int = 1000
    alpha: float = 0.001
    batch_size: int = 500
    seed: int = 0


@dataclass
class BaselineSpec:
    """The Fig. 3 baselines of a zoo (the ``baselines:`` entry of ``params/zoo/<name>.yaml``).

    ``members``: architectures of the fixed ensembles — the ensemble-smoothed model F (at
    ``sigma``), the plain ensemble H and the ADP ensemble (paper: DenseNet100, ResNet50, WRN).
    ``rse``: ``{arch, init_sigma, inner_sigma, passes, train}``; ``adp``: ``{alpha, beta, train}``.
    Both start from the zoo's unsmoothed models (``train`` overrides the zoo's fine-tuning recipe).
    """

    members: list[str]
    sigma: float = 0.25
    rse: dict[str, Any] = field(default_factory=dict)
    adp: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], zoo_spec: "ZooSpec", source: str = "zoo spec") -> "BaselineSpec":
        allowed = {f.name for f in fields(cls)}
        if not isinstance(raw, dict) or set(raw) - allowed or "members" not in raw:
            raise ValueError(f"{source}: baselines must be a mapping with 'members' and only {sorted(allowed)}")
        spec = cls(**raw)
        for arch in [*spec.members, spec.rse.get("arch", spec.members[0])]:
            zoo_spec.submodel(arch, 0.0)  # unknown architectures fail here
        if len(spec.members) < 2:
            raise ValueError(f"{source}: baselines.members needs at least 2 architectures for ADP")
        if spec.sigma not in [float(s) for s in zoo_spec.sigmas]:
            raise ValueError(f"{source}: baselines.sigma {spec.sigma} is not one of the zoo's sigmas {zoo_spec.sigmas}")
        bad_rse = set(spec.rse) - {"arch", "init_sigma", "inner_sigma", "passes", "train"}
        bad_adp = set(spec.adp) - {"alpha", "beta", "train"}
        if bad_rse or bad_adp:
            raise ValueError(f"{source}: unknown baseline keys {sorted(bad_rse | bad_adp)}")
        spec.train_config(zoo_spec, "rse")
        return spec

    def train_config(self, zoo_spec: "ZooSpec", which: str) -> TrainConfig:
        own = (self.rse if which == "rse" else self.adp).get("train", {})
        base = {**zoo_spec.train, **(zoo_spec.finetune or {}), "sigma": 0.0, "noise_space": zoo_spec.noise_space,
                "seed": zoo_spec.seed + (11 if which == "rse" else 13)}
        return TrainConfig(**{**base, **own})


@dataclass
class ZooSpec:
    name: str
    models: list[dict[str, Any]]
    sigmas: list[float]
    train: dict[str, Any] = field(default_factory=dict)
    finetune: dict[str, Any] | None = None
    single_arch: dict[str, Any] | None = None
    evaluate: dict[str, Any] = field(default_factory=dict)
    noise_space: str = "pixel"
    seed: int = 0
    baselines: dict[str, Any] | None = None  # Fig. 3 baselines: see semlib.baselines.BaselineSpec

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> "ZooSpec":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"zoo spec {path} not found; presets live in params/zoo/<preset>.yaml")
        raw = load_yaml(path)  # bounded: alias bombs, huge files and deep nesting are one line
        if not isinstance(raw, dict):
            raise ValueError(f"zoo spec {path} must be a YAML mapping, got {type(raw).__name__}")
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "zoo spec") -> "ZooSpec":
        unknown = set(raw) - _SPEC_KEYS
        if unknown:
            raise ValueError(f"{source}: unknown keys {sorted(unknown)}; allowed: {sorted(_SPEC_KEYS)}")
        for key in ("name", "models", "sigmas"):
            if key not in raw:
                raise ValueError(f"{source}: missing key {key!r}")
        spec = cls(**raw)
        spec.validate(source)
        return spec

    def validate(self, source: str = "zoo spec") -> None:
        noise_space(self.noise_space)
        for s in self.sigmas:
            check_sigma(s)
        if 0.0 not in [float(s) for s in self.sigmas]:
            raise ValueError(f"{source}: sigmas must include 0 (the unsmoothed models), got {self.sigmas}")
        seen = set()
        for m in self.models:
            bad = set(m) - _MODEL_KEYS
            if bad or "arch" not in m:
                raise ValueError(f"{source}: model entry {m} must have 'arch' and only {sorted(_MODEL_KEYS)}")
            family_of(m["arch"])  # unknown architectures fail here, listing the known ones
            if m["arch"] in seen:
                raise ValueError(f"{source}: architecture {m['arch']} listed twice")
            seen.add(m["arch"])
        for m in [{}] + self.models:
            TrainConfig(**{**self.train, **m.get("train", {})})
            if self.finetune is not None:
                TrainConfig(**{**self.train, **m.get("train", {}), **self.finetune})
        EvalConfig(**self.evaluate)
        if self.baselines is not None:
            BaselineSpec.from_dict(self.baselines, self, source)
        if self.single_arch is not None and self.single_arch.get("arch") not in seen:
            raise ValueError(f"{source}: single_arch.arch must be one of the listed models {sorted(seen)}")

    def _model(self, arch: str) -> dict[str, Any]:
        return next(m for m in self.models if m["arch"] == arch)

    def submodel(self, arch: str, sigma: float) -> SubModelSpec:
        """The sub-model of architecture ``arch`` at ``sigma`` as this zoo builds it."""
        if arch not in {m["arch"] for m in self.models}:
            raise ValueError(f"zoo {self.name} has no architecture {arch!r}; it has {[m['arch'] for m in self.models]}")
        return self._sub(self._model(arch), sigma)

    def _sub(self, m: dict[str, Any], sigma: float) -> SubModelSpec:
        return SubModelSpec(sigma=float(sigma), noise_space=self.noise_space, **{k: m[k] for k in _ARCH_KEYS if k in m})

    def submodels(self, include_single_arch: bool = True) -> list[SubModelSpec]:
        """Every sub-model, unsmoothed ones first (they are the fine-tuning parents)."""
        out = [self._sub(m, s) for s in sorted(set(map(float, self.sigmas))) for m in self.models]
        if include_single_arch and self.single_arch:
            m = self._model(self.single_arch["arch"])
            out += [self._sub(m, s) for s in self.single_arch["sigmas"] if float(s) not in map(float, self.sigmas)]
        return out

    def train_config(self, sub: SubModelSpec) -> tuple[TrainConfig, str | None]:
        """The training recipe of ``sub`` and the name of the model it starts from (or None)."""
        base = {**self.train, **self._model(sub.arch).get("train", {}), "sigma": sub.sigma,
                "noise_space": sub.noise_space, "seed": self.seed + _stable_hash(sub.name)}
        if sub.sigma > 0 and self.finetune is not None:
            return TrainConfig(**{**base, **self.finetune}), sub.parent().name
        return TrainConfig(**base), None

    def eval_config(self) -> EvalConfig:
        return EvalConfig(**self.evaluate)


def _stable_hash(text: str) -> int:
    return int.from_bytes(text.encode(), "little") % 1_000_003


def load_spec(preset_or_path: str | os.PathLike, root: str | os.PathLike | None = None) -> ZooSpec:
    """A zoo spec by preset name (``params/zoo/<name>.yaml`` in the project) or by path."""
    p = Path(preset_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = Path(root or project_root()) / "params" / "zoo" / f"{preset_or_path}.yaml"
    return ZooSpec.from_yaml(p)


def default_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """Where a zoo's checkpoints live: ``zoo/<name>/`` in the project."""
    return Path(root or project_root()) / "zoo" / name
