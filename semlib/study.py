"""A study: the trained models, the evaluation images and the attack settings behind the paper's
figures, and the cached ASR-vs-distortion curves computed from them (settings and curve specs:
:mod:`semlib.specs`; the store: :mod:`semlib.cache`; certification: :mod:`semlib.certification`;
tables: :mod:`semlib.tables`).

A figure is a list of :class:`CurveSpec` — (defended model or attacker, attack, goal, SEM
variant) — and :meth:`Study.curves` returns one row per (curve, image) with the minimal
successful distortion (:func:`semlib.curves.search_distortion`), computing only what the
cache under ``cache/curves/<zoo>/`` does not hold yet. Every curve draws its randomness from a
generator seeded by its own configuration and image shard, so results do not depend on which
curves ran before, on interruptions or on the executor.
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

from . import certification, device as devices, io, layout, runner, zoo
from .attacks import APGD, make_attack
from .baselines import BaselineSpec, load_baseline
from .cache import cache_key, cached, cached_shards, finished, shard_generator
from .curves import JudgeConfig, SearchConfig, mc_verdict, search_distortion
from .data import eval_subset, find_data_dir
from .outputs import project_root
from .runner import Executor
from .scenarios import Defended, Defenses, build
from .smoothing import NoisyClassifier
# the study's vocabulary and tables, re-exported: notebooks import them from here
from .specs import (BASELINES, GOALS, QUERY_ATTACKS, VARIANTS, CurveSpec, StudyConfig,  # noqa: F401
                    random_targets, specs)
from .tables import accuracy_table, asr_table, certified_accuracy, summary_table  # noqa: F401

__all__ = ["BASELINES", "GOALS", "QUERY_ATTACKS", "VARIANTS", "CurveSpec", "Study", "StudyConfig", "accuracy_table",
           "asr_table", "certified_accuracy", "compute_shard_task", "deterministic", "random_targets", "specs",
           "summary_table"]


def deterministic(model: nn.Module) -> bool:
    return bool(getattr(model, "deterministic", False))


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
            raise io.CheckpointError(f"no trained sub-models in {self.zoo_dir}; run notebook 01_zoo (make zoo) first")
        self.threshold = threshold
        self.baseline_spec = BaselineSpec.from_dict(self.spec.baselines, self.spec) if self.spec.baselines else None
        self.data_dir = data_dir
        cache_root = Path(os.environ.get("SEMLIB_CACHE") or project_root() / "cache")
        self.cache_dir = Path(cache_dir or cache_root / "curves" / self.spec.name)
        self.x, self.y, self.ids = eval_subset(cfg.n_images, data_dir)
        self.targets = random_targets(self.y, self.ids, cfg.seed)
        self._models: dict[str, NoisyClassifier] = {}
        self._defenses: dict[str, Defenses] = {}
        self._baselines: dict[str, nn.Module] = {}
        self._custom: dict[str, tuple[list[str], tuple[int, int]]] = {}
        # the checkpoints loaded so far: id(module) -> name (as under zoo_dir) -> hash of the file
        # the weights came from; a curve's key holds the hashes of the checkpoints it uses, so
        # retraining one model recomputes only its curves
        self._owner: dict[int, str] = {}
        self._sha: dict[str, str] = {}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "Study":
        """The study a notebook's parameters describe: ``ZOO`` (None: ``PRESET``), ``ZOO_DIR``,
        ``THRESHOLD``, ``STUDY`` (:class:`StudyConfig`) and ``DATA_DIR`` — the notebooks' one-line
        setup."""
        spec = zoo.load_spec(params.get("ZOO") or params["PRESET"])
        return cls(spec.name, StudyConfig.from_dict(params.get("STUDY")), zoo_dir=params.get("ZOO_DIR"),
                   threshold=params.get("THRESHOLD", 0.2), data_dir=params.get("DATA_DIR"))

    # ----- models -----
    def submodel(self, name: str) -> NoisyClassifier:
        if name not in self._models:
            self._sha[name] = self._card_sha(name)
            expected = {s.name: s for s in self.spec.submodels()}.get(name)
            self._models[name] = zoo.load_submodel(self.zoo_dir, name, self.device, expected)
            self._owner[id(self._models[name].base)] = name
        return self._models[name]

    def add_variant(self, name: str, names: list[str], k_range: tuple[int, int]) -> str:
        """Register a SEM on the sub-models ``names`` with K in ``k_range``; returns its variant
        (``custom:<name>``) for :class:`CurveSpec`. Its curves are cached under its members and K."""
        unknown = sorted(set(names) - set(self.table.name))
        if not names or unknown:
            raise ValueError(f"a SEM needs trained sub-models of zoo {self.spec.name}; unknown: {unknown or 'none given'}")
        k = (int(k_range[0]), int(k_range[1]))
        if not 1 <= k[0] <= k[1]:
            raise ValueError(f"K range must satisfy 1 <= K_min <= K_max, got {k_range}")
        variant = f"custom:{name}"
        if self._custom.get(variant) != (sorted(names), k):
            self._defenses.pop(variant, None)
        self._custom[variant] = (sorted(names), k)
        return variant

    def collection(self, variant: str = "sem") -> list[str]:
        """Names of the sub-models a SEM variant draws from (admitted by ``threshold``)."""
        if variant.startswith("custom:"):
            return self._custom[variant][0]
        t = self.table
        if variant == "sem_wrn":
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
            names = self.collection(variant)
            families = dict(zip(self.table.name, self.table.family))
            if variant == "sem_wrn":  # one family: K distinct sub-models
                families = {n: n for n in names}
            k = self.cfg.k_range_large if variant == "sem_k68" else self.cfg.k_range
            if variant.startswith("custom:"):
                k = self._custom[variant][1]
            n_groups = len({families[n] for n in names})
            k_range = (min(k[0], n_groups), min(k[1], n_groups))
            bs, sigma = self.baseline_spec, self.baseline_spec.sigma
            sub = lambda arch, s: self.submodel(self.spec.submodel(arch, s).name)  # noqa: E731
            self._defenses[variant] = Defenses(
                collection={n: self.submodel(n) for n in names}, families=families,
                baseline={a: sub(a, sigma) for a in bs.members}, baseline_plain={a: sub(a, 0.0) for a in bs.members},
                single_smoothed=sub(self.cfg.single_arch, sigma), single_plain=sub(self.cfg.single_arch, 0.0),
                k_range=k_range)
        return self._defenses[variant]

    def baseline(self, name: str) -> nn.Module:
        if name not in self._baselines:
            key = f"baselines/{name.lower()}"
            self._baselines[name] = load_baseline(name.lower(), self.spec, self.zoo_dir).to(self.device)
            self._sha[key] = self._card_sha(key)
            self._owner[id(self._baselines[name])] = key
        return self._baselines[name]

    def _card_sha(self, name: str) -> str | None:
        card = io.read_card(self.zoo_dir / f"{name}.safetensors")
        return io.card_fingerprint(card) if card else None  # None: load_* says what is missing

    def checkpoints(self, *models: nn.Module) -> dict[str, str]:
        """The checkpoints (name -> sha256) whose weights ``models`` use."""
        names = sorted({self._owner[id(m)] for model in models for m in model.modules() if id(m) in self._owner})
        if not names:
            raise RuntimeError("no loaded checkpoint found in the given models: build them from this study's "
                               "submodel() or baseline()")
        return {n: self._sha[n] for n in names}

    def models_for(self, spec: CurveSpec) -> tuple[nn.Module, nn.Module]:
        """(the model the attacker works on, the defended model that judges)."""
        if spec.defense == "SEM":
            m = self.defenses(spec.variant).models[Defended.SEM]
            return m, m
        if spec.defense in BASELINES:
            m = self.baseline(spec.defense)
            return m, m
        return build(spec.defense, self.defenses(spec.variant), period=self.cfg.period, half_seed=self.cfg.half_seed)

    def attack_for(self, spec: CurveSpec, attack_model: nn.Module):
        c = self.cfg
        eot = 1 if deterministic(attack_model) else None
        if spec.attack in QUERY_ATTACKS:
            return make_attack(spec.attack, norm=c.norm, max_queries=c.query_budget, samples=c.query_samples)
        if spec.attack == "apgd":
            return APGD(norm=c.norm, steps=c.apgd_steps, eot=eot or c.apgd_eot, loss=c.apgd_loss)
        return make_attack(spec.attack, norm=c.norm, steps=c.steps, eot=eot or c.eot)

    # ----- curves -----
    def draw_config(self, spec: CurveSpec) -> dict[str, Any]:
        """What a curve computes, which seeds its shards: the curve, the settings it uses and a
        custom SEM's members and K. The models' weights are not in it, so a retrained model is
        attacked with the same random numbers as before."""
        config = {"curve": asdict(spec), "study": self.cfg.curve_fields(spec.attack)}
        if spec.variant.startswith("custom:"):
            config["custom"] = self._custom[spec.variant]
        return config

    def curve_config(self, spec: CurveSpec) -> dict[str, Any]:
        """Everything a curve depends on, its cache key (plus the shard's range): what it
        computes and the hashes of the checkpoints it uses."""
        return {**self.draw_config(spec), "models": self.checkpoints(*self.models_for(spec))}

    def compute_shard(self, spec: CurveSpec, sl: slice) -> pd.DataFrame:
        """The per-image rows of ``spec`` on images ``sl``, seeded by the curve and the shard."""
        attack_model, judge_model = self.models_for(spec)
        attack = self.attack_for(spec, attack_model)
        judge = JudgeConfig(n=1 if deterministic(judge_model) else self.cfg.judge_n, alpha=self.cfg.alpha)
        search = SearchConfig(eps0=self.cfg.eps0, search_steps=self.cfg.search_steps,
                              binary_steps=self.cfg.binary_steps)
        gen = shard_generator(self.draw_config(spec), sl, self.device)
        x, y, target = self.images(sl, spec.goal == "targeted")
        return search_distortion(attack, attack_model, judge_model, x, y, target,
                                 norm=self.cfg.norm, search=search, judge=judge, generator=gen,
                                 ids=self.ids[sl].numpy())

    def images(self, sl: slice, targeted: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Images, labels and (if ``targeted``) targets of shard ``sl`` on the study's device."""
        to = lambda t: t[sl].to(self.device)  # noqa: E731
        return to(self.x), to(self.y), to(self.targets) if targeted else None

    def _store(self, config: dict[str, Any], compute) -> pd.DataFrame:
        return cached(config, compute, self.cache_dir, info=self.computed_on)

    def shards(self, n_images: int | None = None) -> list[slice]:
        n = len(self.y) if n_images is None else min(n_images, len(self.y))
        return [slice(s, min(n, s + self.cfg.shard_size)) for s in range(0, n, self.cfg.shard_size)]

    def curve(self, spec: CurveSpec, progress: bool = False, n_images: int | None = None) -> pd.DataFrame:
        """One row per evaluation image for ``spec`` (cached shard by shard); ``n_images``: only
        the first so many (whole shards are reused, so a shard size of 1 reuses any prefix)."""
        config = self.curve_config(spec)
        n = len(self.y) if n_images is None else min(n_images, len(self.y))
        rows = cached_shards(config, n, lambda sl: self.compute_shard(spec, sl), self.cache_dir, self.cfg.shard_size,
                             progress=progress, info=self.computed_on)
        return rows.assign(label=spec.label, defense=spec.defense, attack=spec.attack, goal=spec.goal,
                           variant=spec.variant)

    def recipe(self) -> str:
        """How to rebuild this study elsewhere (a Ray worker): absolute paths, as JSON."""
        return json.dumps({"zoo": str(self.spec_path), "cfg": asdict(self.cfg), "zoo_dir": str(self.zoo_dir.resolve()),
                           "threshold": self.threshold, "data_dir": str(find_data_dir(self.data_dir)),
                           "cache_dir": str(self.cache_dir.resolve()), "device": self._device_request}, sort_keys=True)

    def shard_tasks(self, curve_specs: Iterable[CurveSpec], n_images: int | None = None) -> list[tuple]:
        """One task ``(recipe, spec, start, stop)`` for :func:`compute_shard_task` per curve shard
        the cache does not hold yet (custom variants stay in this process)."""
        recipe = self.recipe()
        configs = [(s, self.curve_config(s)) for s in curve_specs if not s.variant.startswith("custom:")]
        return [(recipe, asdict(s), sl.start, sl.stop) for s, config in configs for sl in self.shards(n_images)
                if not finished({**config, "shard": [sl.start, sl.stop]}, self.cache_dir)]

    def curves(self, curve_specs: Iterable[CurveSpec], progress: bool = True, n_images: int | None = None,
               executor: Executor | None = None) -> pd.DataFrame:
        """Rows of every curve in ``curve_specs`` (one per curve and image). With a Ray
        ``executor`` the missing shards are computed as Ray tasks first; the result is the same."""
        curve_specs = list(curve_specs)
        if executor is not None and not executor.serial:
            runner.run(compute_shard_task, self.shard_tasks(curve_specs, n_images), executor, desc="curve shards",
                       progress=progress)
        out = []
        bar = tqdm(curve_specs, desc="curves", disable=not progress)
        for s in bar:
            bar.set_postfix_str(f"{s.label} {s.attack} {s.goal}")
            out.append(self.curve(s, n_images=n_images))
        return pd.concat(out, ignore_index=True)

    def clean_rows(self, models: dict[str, nn.Module], progress: bool = True) -> pd.DataFrame:
        """Clean Monte-Carlo correctness per image of each model (cached): rows label, example,
        clean_correct, judge_draws, with attack ``clean``."""

        def compute(model: nn.Module, sl: slice, gen: torch.Generator) -> pd.DataFrame:
            judge = JudgeConfig(n=1 if deterministic(model) else self.cfg.judge_n, alpha=self.cfg.alpha)
            x, y, _ = self.images(sl)
            wrong, draws = mc_verdict(model, x, y, None, judge, gen)
            return pd.DataFrame({"example": self.ids[sl].numpy(), "clean_correct": (~wrong).cpu().numpy(),
                                 "judge_draws": draws.cpu().numpy()})

        rows = self.per_model(models, lambda label: {"clean": label}, compute, "clean MC accuracy", progress)
        return rows.assign(attack="clean", goal="untargeted")

    def per_model(self, models: dict[str, nn.Module], key, compute, desc: str, progress: bool) -> pd.DataFrame:
        """``compute(model, shard, generator)`` for every model and image shard, cached under
        ``key(label)`` plus the study's settings, with a column ``label``."""
        out = []
        for label, model in tqdm(models.items(), desc=desc, disable=not progress):
            draws = {**key(label), "study": self.cfg.curve_fields()}  # seeds the shards
            config = {**draws, "models": self.checkpoints(model)}
            rows = cached_shards(config, len(self.y),
                                 lambda sl, m=model, c=draws: compute(m, sl, shard_generator(c, sl, self.device)),
                                 self.cache_dir, self.cfg.shard_size, info=self.computed_on)
            out.append(rows.assign(label=label))
        return pd.concat(out, ignore_index=True)

    def certifiable(self, sigma: float) -> dict[str, nn.Module]:
        """The SEM, F and G with one shared noise draw at ``sigma`` (:func:`semlib.certification.certifiable`)."""
        return certification.certifiable(self, sigma)

    def certify_rows(self, models: dict[str, nn.Module], sigma: float, n0: int, n: int, alpha: float,
                     progress: bool = True) -> pd.DataFrame:
        """Cohen's CERTIFY per image and model, cached (:func:`semlib.certification.certify_rows`)."""
        return certification.certify_rows(self, models, sigma, n0, n, alpha, progress)

    def eps_grid(self, points: int = 101, eps_max: float | None = None) -> np.ndarray:
        return np.linspace(0.0, eps_max or self.cfg.eps_max, points)


@functools.lru_cache(maxsize=2)
def _study(recipe: str) -> Study:
    r = json.loads(recipe)
    return Study(r["zoo"], StudyConfig(**r["cfg"]), zoo_dir=r["zoo_dir"], threshold=r["threshold"],
                 data_dir=r["data_dir"], cache_dir=r["cache_dir"], device=r["device"])


def compute_shard_task(recipe: str, spec: dict, start: int, stop: int) -> str:
    """One curve shard as a task (any process, e.g. a Ray worker): rebuilds the study from
    ``recipe`` (once per process), computes the shard unless cached and stores it; returns its key."""
    study = _study(recipe)
    s = CurveSpec(**spec)
    config = {**study.curve_config(s), "shard": [start, stop]}
    study._store(config, lambda: study.compute_shard(s, slice(start, stop)))
    return cache_key(config)
