"""Per-model results of notebook 06: clean Monte-Carlo accuracy (:func:`clean_rows`) and
certification of the SEM and its contrasts. Cohen's bound needs one Gaussian
draw for the whole classifier, so the certified SEM is the shared-noise version at one sigma
(its members add no noise of their own; its random draw does not depend on the input, the
paper's eq. 4 argument), and F and G are certified the same way. ``study`` is a
:class:`semlib.study.Study` (its models, images and cache)."""
from __future__ import annotations

import functools

import pandas as pd
import torch
from torch import nn

from tqdm.auto import tqdm

from . import batching, layout
from .cache import cached_split, missing_span, request_streams, shard_generator
from .ensemble import Ensemble, StochasticEnsemble
from .scenarios import Defended
from .judge import judge
from .smoothing import NoisyClassifier, certify, deterministic, pixel_radius


def clean_models(study) -> dict[tuple[str, str], nn.Module]:
    """The models whose clean Monte-Carlo accuracy notebook 06 compares, keyed (scenario,
    variant): the SEM, F and G, and every smoothed sub-model of the collection (``submodel``)."""
    d = study.defenses()
    smoothed = [n for n in study.collection() if study.submodel(n).sigma > 0]
    return {("SEM", "sem"): d.models[Defended.SEM], ("F", "sem"): d.models[Defended.ENSEMBLE_SMOOTHED],
            ("G", "sem"): d.models[Defended.SINGLE_SMOOTHED], **{("submodel", n): study.submodel(n) for n in smoothed}}


def model_label(key: str | tuple[str, str]) -> str:
    """How a model of :func:`clean_models` is shown: its scenario, a sub-model as ``single smoothed <name>``."""
    scenario, variant = (key, "sem") if isinstance(key, str) else key
    return f"single smoothed {variant}" if scenario == "submodel" else scenario if variant == "sem" else f"{scenario} ({variant})"


def clean_rows(study, models: dict, progress: bool = True) -> pd.DataFrame:
    """Clean Monte-Carlo correctness per image of each model (cached): rows label, scenario,
    variant, example, clean_correct, judge_draws, with attack ``clean``. ``models`` is keyed by
    (scenario, variant), as :func:`clean_models` returns them, or by a name (variant ``sem``)."""

    def compute(model: nn.Module, sl: slice, gen: torch.Generator) -> pd.DataFrame:
        x, y, _ = study.images(sl)
        wrong, draws = judge(model, x, y, None, study.cfg.judge(deterministic(model)), gen)
        return pd.DataFrame({"example": study.ids[sl].numpy(), "clean_correct": (~wrong).cpu().numpy(),
                             "judge_draws": draws.cpu().numpy()})

    keyed = {(k, "sem") if isinstance(k, str) else k: m for k, m in models.items()}
    rows = per_model(study, {model_label(k): m for k, m in keyed.items()}, lambda label: {"clean": label}, compute,
                     "clean MC accuracy", progress)
    scenario = {model_label(k): k[0] for k in keyed}
    variant = {model_label(k): k[1] for k in keyed}
    return rows.assign(scenario=rows.label.map(scenario), variant=rows.label.map(variant), attack="clean",
                       goal="untargeted")


def per_model(study, models: dict[str, nn.Module], key, compute, desc: str, progress: bool,
              streams: bool = False, channels_last: bool = False, shards: list[slice] | None = None) -> pd.DataFrame:
    """``compute(model, shard, generator)`` for every model and image shard, cached under
    ``key(label)`` plus the study's settings, with a column ``label``. The generator: per-request
    streams of the shard's images with ``streams`` (:func:`semlib.cache.request_streams`), else
    one per shard. With ``streams`` the shards of a block (:meth:`semlib.study.Study.blocks`,
    ``StudyConfig.block`` images) are computed as one batch and cached shard by shard: every draw
    is the image's own, so the rows are the same up to rounding, and the networks see larger
    batches. The models run together (``StudyConfig.together``: their network calls batched,
    :mod:`semlib.batching`), each cached as soon as it is done; ``channels_last``: the models run
    channels_last (strided 1x1 convolutions stay NCHW); ``shards``: only these image shards
    (default: all the study's)."""
    jobs = []
    for label, model in models.items():
        draws = {**key(label), "study": study.cfg.curve_fields()}  # seeds the shards
        config = {**draws, "models": study.checkpoints(model)} | ({"draws": "per-request"} if streams else {})
        jobs.append((label, model, draws, config))
    gen = lambda c, sl: request_streams(c, study.ids[sl]) if streams else shard_generator(c, sl, study.device)  # noqa: E731
    chosen = study.shards() if shards is None else shards
    parts: dict[str, list[pd.DataFrame]] = {label: [] for label, *_ in jobs}
    with layout.channels_last_all([m for _, m, _, _ in jobs], channels_last):
        for group in tqdm(study.blocks(chosen) if streams else [[sl] for sl in chosen], desc=desc, disable=not progress):
            tasks = [functools.partial(_store_group, study, group, config, functools.partial(compute, m),
                                       functools.partial(gen, draws)) for _, m, draws, config in jobs]
            for (label, *_), rows in zip(jobs, batching.run(tasks, study.cfg.together)):
                parts[label] += rows
    return pd.concat([pd.concat(p, ignore_index=True).assign(label=label) for label, p in parts.items()],
                     ignore_index=True)


def _store_group(study, group: list[slice], config: dict, compute, gen) -> list[pd.DataFrame]:
    """The rows of each shard of ``group`` (consecutive): read from the cache, or computed by
    one call ``compute(span, gen(span))`` over the span of those the cache lacks, split and cached
    shard by shard (a cached shard inside the span is read)."""
    span = missing_span(config, group, study.cache_dir)
    rows = None if span is None else compute(span, gen(span))
    return cached_split(config, group, span, rows, study.cache_dir, study.computed_on)


def certifiable(study, sigma: float) -> dict[str, nn.Module]:
    """Smoothed classifiers with ONE shared noise draw ``x + delta``, delta ~ N(0, sigma^2 I),
    so Cohen's certificate applies: the SEM over the collection's sub-models trained at
    ``sigma`` (its random draw is independent of the input, eq. 4), the fixed ensemble of
    the F members, and the single model of G."""
    t = study.table.set_index("name")
    names = [n for n in study.collection("sem") if float(t.sigma[n]) == float(sigma)]
    if not names:
        raise ValueError(f"no admitted sub-model at sigma {sigma}; pick one of the zoo's sigmas {study.spec.sigmas}")
    families = {n: t.family[n] for n in names}
    k = study.cfg.k_range
    n_fam = len(set(families.values()))
    sem = StochasticEnsemble({n: NoisyClassifier(study.submodel(n).base, 0.0) for n in names}, families,
                             (min(k[0], n_fam), min(k[1], n_fam)))
    base = lambda arch: study.submodel(study.spec.submodel(arch, sigma).name).base  # noqa: E731
    space = study.spec.noise_space
    return {"SEM": NoisyClassifier(sem, sigma, space),
            "F": NoisyClassifier(Ensemble([base(a) for a in study.baseline_spec.members],
                                          names=study.baseline_spec.members).to(study.device), sigma, space),
            "G": NoisyClassifier(base(study.cfg.contrast_arch), sigma, space)}


def certify_rows(study, models: dict[str, nn.Module], sigma: float, n0: int, n: int, alpha: float,
                 progress: bool = True) -> pd.DataFrame:
    """Cohen's CERTIFY per image and model (cached): label, example, prediction, correct, radius
    (L2 in the zoo's noise space, where the noise is isotropic) and radius_pixel (the pixel-space
    L2 radius it certifies: equal for pixel noise, a lower bound for normalized noise)."""

    def compute(model: nn.Module, sl: slice, gen: torch.Generator) -> pd.DataFrame:
        x, _, _ = study.images(sl)
        cert = certify(model, x, sigma, n0, n, alpha, generator=gen)
        pred = cert.prediction.cpu()
        return pd.DataFrame({"example": study.ids[sl].numpy(), "prediction": pred.numpy(),
                             "correct": (pred == study.y[sl]).numpy(), "radius": cert.radius.cpu().numpy()})

    # "base_draws": a random base draws from the shard's generator (keys of the fixed version)
    key = lambda label: {"certify": label, "sigma": sigma, "n0": n0, "n": n, "alpha": alpha,  # noqa: E731
                         "base_draws": "seeded"}
    rows = per_model(study, models, key, compute, "certify", progress)
    return rows.assign(noise_space=study.spec.noise_space, radius_pixel=pixel_radius(rows.radius, study.spec.noise_space))
