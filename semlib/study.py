"""A study: the trained models, the evaluation images and the attack settings behind the paper's
figures, and the cached ASR-vs-distortion curves computed from them (settings, variants and
curve specs: :mod:`semlib.specs`; the store: :mod:`semlib.cache`; tables: :mod:`semlib.tables`;
per-model accuracy and certificates on a study: :mod:`semlib.certification`).

A figure is a list of :class:`CurveSpec` (scenario, attack, goal, SEM variant); :meth:`Study.curves` returns one row
per (curve, image) with the minimal successful distortion (:func:`semlib.curves.search_distortion`), computing what
the cache under ``cache/curves/<zoo>/`` lacks a block of image shards at a time. Every random number is the image's
own (:mod:`semlib.streams`): results depend on no earlier curve, interruption, block or executor (up to rounding).
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from . import artifacts, device as devices, layout, runner, shards, zoo
from .checkpoints import Checkpoints
from .cache import cache_key, request_streams, shard_config
from .data import eval_subset, find_data_dir
from .outputs import project_root
from .runner import Executor
from .scenarios import SCENARIOS, Defended, Defenses, build
from .smoothing import NoisyClassifier, deterministic
# the study's vocabulary and tables, re-exported: notebooks import them from here
from .specs import (ADAPTIVE, EXTRA_SCENARIOS, FIG3_BASELINES, GOALS, QUERY_ATTACKS, VARIANTS,  # noqa: F401
                    CurveSpec, StudyConfig, Variant, custom_variant, label, random_targets, specs)
from .tables import accuracy_table, asr_table, certified_accuracy, summary_table  # noqa: F401
from .zoospec import BaselineSpec

__all__ = ["ADAPTIVE", "EXTRA_SCENARIOS", "FIG3_BASELINES", "GOALS", "QUERY_ATTACKS", "VARIANTS", "CurveSpec", "Study",
           "StudyConfig", "Variant", "accuracy_table", "asr_table", "certified_accuracy", "compute_shard_task",
           "deterministic", "random_targets", "specs", "summary_table"]


class Study:
    """The models and images of one zoo, and the curves computed on them.

    Parameters
    ----------
    zoo_name : the zoo spec (``params/zoo/<name>.yaml``)
    cfg : StudyConfig
    zoo_dir : checkpoints (default ``zoo/<name>``)
    threshold : admission threshold of the collection (as in notebook 01)
    data_dir, cache_dir : data folder; curve cache (default ``$SEMLIB_CACHE/curves/<zoo>``, with
        ``SEMLIB_CACHE`` defaulting to the project's ``cache/``)
    device : where models run and noise is drawn (:func:`semlib.device.resolve`; None: auto — a
        GPU when torch sees one). The cache key does not include it; each shard's manifest
        records the device that computed it.
    """

    def __init__(self, zoo_name: str, cfg: StudyConfig, *, zoo_dir: str | os.PathLike | None = None,
                 threshold: float = 0.2, data_dir: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, device: str | torch.device | None = None):
        self.device = devices.resolve(device)
        self.computed_on = {"device": devices.describe(self.device), "cpu_capability": layout.cpu_capability()}  # recorded in every shard's manifest
        self._device_request = devices.request(device)  # what Ray workers resolve for themselves
        self.spec = zoo.load_spec(zoo_name)
        self.spec_path = (Path(zoo_name) if Path(zoo_name).suffix in (".yaml", ".yml")
                          else project_root() / "params" / "zoo" / f"{zoo_name}.yaml").resolve()
        self.cfg = cfg
        self.zoo_dir = Path(zoo_dir or zoo.default_dir(self.spec.name))
        self.table = zoo.zoo_table(self.zoo_dir)
        if self.table.empty:
            raise artifacts.CheckpointError(f"no trained sub-models in {self.zoo_dir}; run notebook 01_zoo (make zoo) first")
        self.threshold = threshold
        self.baseline_spec = BaselineSpec.from_dict(self.spec.baselines, self.spec) if self.spec.baselines else None
        self.data_dir = data_dir
        cache_root = Path(os.environ.get("SEMLIB_CACHE") or project_root() / "cache")
        self.cache_dir = Path(cache_dir or cache_root / "curves" / self.spec.name)
        self.x, self.y, self.ids = eval_subset(cfg.n_images, data_dir)
        self.targets = random_targets(self.y, self.ids, cfg.seed)
        self.loaded = Checkpoints(self.spec, self.zoo_dir, self.device)
        self._defenses: dict[str, Defenses] = {}
        self.variants: dict[str, Variant] = dict(VARIANTS)  # the built-in SEMs, then add_variant's

    @classmethod
    def from_params(cls, params: dict[str, Any], **study: Any) -> "Study":
        """The study a notebook's parameters describe: ``ZOO`` (None: ``PRESET``), ``ZOO_DIR``,
        ``THRESHOLD``, ``STUDY`` (:class:`StudyConfig`) and ``DATA_DIR`` — the notebooks' one-line
        setup; ``study``: settings that replace STUDY's (None: keep STUDY's)."""
        spec = zoo.load_spec(params.get("ZOO") or params["PRESET"])
        settings = {**(params.get("STUDY") or {}), **{k: v for k, v in study.items() if v is not None}}
        return cls(spec.name, StudyConfig.from_dict(settings), zoo_dir=params.get("ZOO_DIR"),
                   threshold=params.get("THRESHOLD", 0.2), data_dir=params.get("DATA_DIR"))

    # ----- models -----
    def submodel(self, name: str) -> NoisyClassifier:
        return self.loaded.submodel(name)

    def baseline(self, name: str) -> nn.Module:
        return self.loaded.baseline(name)

    def checkpoints(self, *models: nn.Module) -> dict[str, str]:
        """The checkpoints (name -> card fingerprint) whose weights ``models`` use."""
        return self.loaded.of(*models)

    def add_variant(self, name: str, names: list[str], k_range: tuple[int, int]) -> str:
        """Register a SEM on the sub-models ``names`` with K in ``k_range``; returns its variant
        (``custom:<name>``) for :class:`CurveSpec`. Its curves are cached under its members and K."""
        unknown = sorted(set(names) - set(self.table.name))
        if not names or unknown:
            raise ValueError(f"a SEM needs trained sub-models of zoo {self.spec.name}; unknown: {unknown or 'none given'}")
        v = custom_variant(name, names, k_range)
        if self.variants.get(v.name) != v:
            self._defenses.pop(v.name, None)
        self.variants[v.name] = v
        return v.name

    def variant(self, name: str) -> Variant:
        if name not in self.variants:
            raise ValueError(f"unknown SEM variant {name!r}; this study has {sorted(self.variants)} "
                             f"(register others with add_variant)")
        return self.variants[name]

    def label(self, spec: CurveSpec) -> str:
        """The curve's display label under this study's settings and variants."""
        return label(spec, self.cfg, self.variants.get(spec.variant))

    def collection(self, variant: str = "sem") -> list[str]:
        """Names of the sub-models a SEM variant draws from (admitted by ``threshold``)."""
        v = self.variant(variant)
        if v.collection == "members":
            return list(v.members)
        t = self.table
        if v.collection == "single_arch":
            sa = self.spec.single_arch
            if not sa:
                raise ValueError(f"zoo {self.spec.name} has no single-architecture collection (single_arch)")
            t = t[(t.arch == sa["arch"]) & t.sigma.isin([float(s) for s in sa["sigmas"]])]
        else:
            t = t[t.sigma.isin([float(s) for s in self.spec.sigmas])]
        names = zoo.admitted(t, self.threshold).name.tolist()
        if not names:
            raise ValueError(f"no sub-model of {variant} passes THRESHOLD {self.threshold}; lower it")
        return names

    def defenses(self, variant: str = "sem") -> Defenses:
        if variant not in self._defenses:
            if self.baseline_spec is None:
                raise ValueError(f"zoo {self.spec.name} defines no baselines (F, H members); add 'baselines:' to it")
            v, names = self.variant(variant), self.collection(variant)
            families = dict(zip(self.table.name, self.table.family))
            if v.collection == "single_arch":  # one family: K distinct sub-models
                families = {n: n for n in names}
            k, n_groups = v.k_range(self.cfg), len({families[n] for n in names})
            bs, sigma, arch = self.baseline_spec, self.baseline_spec.sigma, self.cfg.contrast_arch
            sub = lambda arch, s: self.submodel(self.spec.submodel(arch, s).name)  # noqa: E731
            self._defenses[variant] = Defenses(
                collection={n: self.submodel(n) for n in names}, families=families,
                ensemble_members={a: sub(a, sigma) for a in bs.members},
                ensemble_members_plain={a: sub(a, 0.0) for a in bs.members},
                single_smoothed=sub(arch, sigma), single_plain=sub(arch, 0.0),
                k_range=(min(k[0], n_groups), min(k[1], n_groups)))
        return self._defenses[variant]

    def models_for(self, spec: CurveSpec) -> tuple[nn.Module, nn.Module]:
        """(the model the attacker works on, the defended model that judges)."""
        if spec.scenario == ADAPTIVE:
            m = self.defenses(spec.variant).models[Defended.SEM]
            return m, m
        if spec.scenario in FIG3_BASELINES:
            m = self.baseline(spec.scenario)
            return m, m
        return build(spec.scenario, self.defenses(spec.variant), period=self.cfg.period, pool=self.cfg.pool,
                     half_seed=self.cfg.half_seed)

    def attack_for(self, spec: CurveSpec, attack_model: nn.Module):
        return self.cfg.attack(spec.attack, deterministic(attack_model))

    # ----- curves -----
    def seed_config(self, spec: CurveSpec) -> dict[str, Any]:
        """What a curve computes, which seeds its shards: the curve, its settings, a listed-members
        SEM's members and K — no weights, so a retrained model meets the same random numbers."""
        config = {"curve": spec.key(), "study": self.cfg.curve_fields(spec.attack)}
        if spec.attack.startswith("apgd"):  # judged at every iterate, the kept point judged again
            config["success"] = "every iterate"
        members = self.variant(spec.variant).seed_entry()
        if members is not None:
            config["custom"] = members
        return config

    def key_config(self, spec: CurveSpec) -> dict[str, Any]:
        """Everything a curve depends on, its cache key (plus the shard's range): what it
        computes (:meth:`seed_config`) and the card fingerprints of the checkpoints it uses,
        found from the spec alone, so a cached curve loads no weights."""
        return {**self.seed_config(spec), "models": self.loaded.fingerprints(self.checkpoint_names(spec)),
                "layout": {k: getattr(self.cfg, k) for k in self.cfg._computation}}

    def checkpoint_names(self, spec: CurveSpec) -> list[str]:
        """The checkpoints whose weights the curve's models use (attacker's and judge's)."""
        if spec.scenario in FIG3_BASELINES:
            return [f"baselines/{spec.scenario.lower()}"]
        defended = Defended.SEM if spec.scenario == ADAPTIVE else SCENARIOS[spec.scenario].defended
        if defended is Defended.SEM:
            return sorted(self.collection(spec.variant))
        if self.baseline_spec is None:
            raise ValueError(f"zoo {self.spec.name} defines no baselines (F, H members); add 'baselines:' to it")
        ensemble = defended in (Defended.ENSEMBLE_SMOOTHED, Defended.ENSEMBLE)
        smoothed = defended in (Defended.ENSEMBLE_SMOOTHED, Defended.SINGLE_SMOOTHED)
        archs = self.baseline_spec.members if ensemble else [self.cfg.contrast_arch]
        return sorted({self.spec.submodel(a, self.baseline_spec.sigma if smoothed else 0.0).name for a in archs})

    def store_shards(self, curve_specs: list[CurveSpec], group: list[slice]) -> list[list[pd.DataFrame]]:
        """Each curve's rows on each shard of ``group`` (a block), cached or computed (:mod:`semlib.shards`)."""
        return shards.store(self, curve_specs, group)

    def clean_generator(self, spec: CurveSpec, sl: slice):
        """Clean correctness's votes: seeded by the judging model and image, shared by its curves."""
        return request_streams({**spec.judged_by(), "study": self.cfg.curve_fields()}, self.ids[sl])

    def images(self, sl: slice, targeted: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Images, labels and (if ``targeted``) targets of shard ``sl`` on the study's device."""
        return self.x[sl].to(self.device), self.y[sl].to(self.device), self.targets[sl].to(self.device) if targeted \
            else None

    def shards(self, n_images: int | None = None, start: int = 0) -> list[slice]:
        """The cached shards of the first ``n_images`` (all), from image ``start`` (a shard's first)."""
        if start % self.cfg.shard_size:
            raise ValueError(f"start {start} is not the first image of a shard of {self.cfg.shard_size}")
        n = len(self.y) if n_images is None else min(n_images, len(self.y))
        return [slice(s, min(n, s + self.cfg.shard_size)) for s in range(start, n, self.cfg.shard_size)]

    def blocks(self, shards: list[slice]) -> list[list[slice]]:
        """``shards`` in groups stepped as one batch: runs of consecutive shards starting in one window of ``block``."""
        groups: list[list[slice]] = []
        for sl in shards:
            last = groups[-1] if groups else None
            if last and last[-1].stop == sl.start and last[0].start // self.cfg.block == sl.start // self.cfg.block:
                last.append(sl)
            else:
                groups.append([sl])
        return groups

    def curve(self, spec: CurveSpec, progress: bool = False, n_images: int | None = None) -> pd.DataFrame:
        """One row per evaluation image for ``spec`` (cached shard by shard); ``n_images``: only
        the first so many (whole shards are reused, so a shard size of 1 reuses any prefix)."""
        return self.curves([spec], progress, n_images)

    def recipe(self) -> str:
        """How to rebuild this study elsewhere (a worker process): absolute paths, as JSON."""
        return json.dumps({"zoo": str(self.spec_path), "cfg": asdict(self.cfg), "zoo_dir": str(self.zoo_dir.resolve()),
                           "threshold": self.threshold, "data_dir": str(find_data_dir(self.data_dir)),
                           "cache_dir": str(self.cache_dir.resolve()), "device": self._device_request}, sort_keys=True)

    def shard_tasks(self, curve_specs: Iterable[CurveSpec], n_images: int | None = None) -> list[tuple]:
        """Tasks ``(recipe, specs, start, stop, custom)`` for :func:`compute_shard_task`
        (:func:`semlib.shards.tasks`); ``custom``: the definitions of the custom SEM variants the
        curves face, which a worker registers before it computes them."""
        curve_specs = [s for s in curve_specs if s.variant in self.variants]  # built-in and registered
        custom = [self.variants[v] for v in sorted({s.variant for s in curve_specs} - set(VARIANTS))]
        defs = [[v.title, list(v.members), list(v.k)] for v in custom]
        return [(*t, defs) for t in shards.tasks(self, curve_specs, n_images)]

    def curves(self, curve_specs: Iterable[CurveSpec], progress: bool = True, n_images: int | None = None,
               executor: Executor | None = None) -> pd.DataFrame:
        """Rows of every curve in ``curve_specs`` (one per curve and image). The missing shards are
        computed first, a task of the ``executor`` (local or Ray) per block, or here; the result is the same."""
        curve_specs = list(curve_specs)
        if executor is not None and not executor.serial:
            runner.run(compute_shard_task, self.shard_tasks(curve_specs, n_images), executor, desc="curve blocks",
                       progress=progress)
        parts = [self.store_shards(curve_specs, group) for group in tqdm(
            self.blocks(self.shards(n_images)), desc=f"{len(curve_specs)} curves, image blocks", disable=not progress)]
        return pd.concat([pd.concat([f for p in parts for f in p[i]], ignore_index=True).assign(
            label=self.label(s), scenario=s.scenario, attack=s.attack, goal=s.goal, variant=s.variant)
            for i, s in enumerate(curve_specs)], ignore_index=True)

    def eps_grid(self, points: int = 101, eps_max: float | None = None) -> np.ndarray:
        return np.linspace(0.0, eps_max or self.cfg.eps_max, points)


@functools.lru_cache(maxsize=2)
def from_recipe(recipe: str) -> Study:
    """The study :meth:`Study.recipe` describes, built once per process (for worker tasks)."""
    r = json.loads(recipe)
    return Study(r["zoo"], StudyConfig(**r["cfg"]), zoo_dir=r["zoo_dir"], threshold=r["threshold"],
                 data_dir=r["data_dir"], cache_dir=r["cache_dir"], device=r["device"])


def compute_shard_task(recipe: str, curve_specs: list[dict], start: int, stop: int, custom: list = ()) -> list[str]:
    """Curves of the image shards in ``start..stop`` (a block) as a task (any process, e.g. a pool
    or Ray worker): rebuilds the study from ``recipe`` (once per process), registers the ``custom``
    SEM variants (``[name, members, k_range]``), computes what is not cached and stores it; returns
    the keys."""
    study, specs_ = from_recipe(recipe), [CurveSpec.from_key(s) for s in curve_specs]
    for name, names, k_range in custom:
        study.add_variant(name, names, tuple(k_range))
    group = study.shards(stop, start)
    study.store_shards(specs_, group)
    return [cache_key(shard_config(study.key_config(s), sl)) for s in specs_ for sl in group]
