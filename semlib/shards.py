"""Curve shards, the unit of curve storage, computed a block at a time (:meth:`semlib.study.Study.blocks`):
each curve's shards of a block that the cache lacks in one eps search over their span, the curves of
a block together (their network calls batched, :mod:`semlib.batching`; ``StudyConfig.together``),
each cached shard by shard as soon as it is done, so an interrupted block keeps its finished
curves. Every draw is the image's own (:mod:`semlib.streams`): rows do not depend on the blocks.
Functions of a :class:`semlib.study.Study`.
"""
from __future__ import annotations

import functools

import pandas as pd

from . import batching, layout
from .cache import cached_split, missing_span, request_streams
from .curves import search_distortion
from .smoothing import deterministic


def search(study, spec, sl: slice, **extra) -> tuple[tuple, functools.partial]:
    """The curve's eps search on images ``sl`` (:func:`semlib.curves.search_distortion`, seeded
    by the curve and each image, so any subset of images meets the same random numbers) as a
    call, with its (attack, judge) models; ``extra``: more keywords for the search."""
    cfg = study.cfg
    attack_model, judge_model = study.models_for(spec)
    x, y, target = study.images(sl, spec.goal == "targeted")
    return (attack_model, judge_model), functools.partial(
        search_distortion, study.attack_for(spec, attack_model), attack_model, judge_model, x, y, target,
        norm=cfg.norm, search=cfg.search(), judge=cfg.judge(deterministic(judge_model)),
        generator=request_streams(study.seed_config(spec), study.ids[sl]), ids=study.ids[sl].numpy(),
        clean_generator=study.clean_generator(spec, sl), **extra)


def compute(study, curve_specs: list, spans: list[slice], finish: list) -> list:
    """``finish[i](rows)`` of each curve's rows on its images ``spans[i]`` (:func:`search`);
    together when the study says so."""
    cfg, jobs = study.cfg, []
    for spec, sl, done in zip(curve_specs, spans, finish):
        models, run = search(study, spec, sl)
        jobs.append((models, lambda run=run, done=done: done(run())))
    with layout.channels_last_all([m for models, _ in jobs for m in models], cfg.channels_last):
        return batching.run([task for _, task in jobs], cfg.together)  # strided 1x1 convs stay NCHW


def store(study, curve_specs: list, group: list[slice]) -> list[list[pd.DataFrame]]:
    """Each curve's rows on each shard of ``group`` (consecutive shards: a block), from the cache,
    else computed (together; a curve on the span of the shards it lacks) and cached shard by shard
    as soon as the curve is done."""
    configs = [study.key_config(s) for s in curve_specs]
    spans = [missing_span(c, group, study.cache_dir) for c in configs]
    todo = [i for i, span in enumerate(spans) if span is not None]
    keep = [functools.partial(cached_split, configs[i], group, spans[i], cache_dir=study.cache_dir,
                              info=study.computed_on) for i in todo]
    done = dict(zip(todo, compute(study, [curve_specs[i] for i in todo], [spans[i] for i in todo], keep)))
    return [done[i] if i in done else cached_split(c, group, None, None, study.cache_dir) for i, c in enumerate(configs)]


def tasks(study, curve_specs: list, n_images: int | None = None) -> list[tuple]:
    """Per block of image shards, the curves the cache does not hold yet as tasks ``(recipe, spec
    keys, start, stop)``: all in one task when together, else one task each."""
    recipe, configs, out = study.recipe(), [(s, study.key_config(s)) for s in curve_specs], []
    for group in study.blocks(study.shards(n_images)):
        todo = [s.key() for s, c in configs if missing_span(c, group, study.cache_dir)]
        groups = [todo] if study.cfg.together else [[k] for k in todo]
        out += [(recipe, g, group[0].start, group[-1].stop) for g in groups if g]
    return out
