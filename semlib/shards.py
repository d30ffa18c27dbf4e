"""Curve shards, the unit of curve work: the curves of one image shard computed together, their
network calls batched (:mod:`semlib.batching`; ``StudyConfig.together``), each cached as soon as
it is done, so an interrupted shard keeps its finished curves. Functions of a
:class:`semlib.study.Study`.
"""
from __future__ import annotations

import functools

import pandas as pd

from . import batching, layout
from .cache import cached, finished, request_streams
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


def compute(study, curve_specs: list, sl: slice, finish: list) -> list:
    """``finish[i](rows)`` of each curve's rows on images ``sl`` (:func:`search`); together
    when the study says so."""
    cfg, jobs = study.cfg, []
    for spec, done in zip(curve_specs, finish):
        models, run = search(study, spec, sl)
        jobs.append((models, lambda run=run, done=done: done(run())))
    with layout.channels_last_all([m for models, _ in jobs for m in models], cfg.channels_last):
        return batching.run([task for _, task in jobs], cfg.together)  # strided 1x1 convs stay NCHW


def store(study, curve_specs: list, sl: slice) -> list[pd.DataFrame]:
    """Each curve's rows on images ``sl``: from the cache, else computed (together) and cached
    as soon as each is done."""
    configs = [{**study.key_config(s), "shard": [sl.start, sl.stop]} for s in curve_specs]
    todo = [i for i, c in enumerate(configs) if not finished(c, study.cache_dir)]
    keep = [functools.partial(cached, configs[i], cache_dir=study.cache_dir, info=study.computed_on) for i in todo]
    done = dict(zip(todo, compute(study, [curve_specs[i] for i in todo], sl,
                                  [lambda rows, f=f: f(lambda: rows) for f in keep])))
    return [done[i] if i in done else cached(c, None, study.cache_dir) for i, c in enumerate(configs)]


def tasks(study, curve_specs: list, n_images: int | None = None) -> list[tuple]:
    """Per image shard, the curves the cache does not hold yet as tasks ``(recipe, spec keys,
    start, stop)``: all in one task when together, else one task each."""
    recipe, configs, out = study.recipe(), [(s, study.key_config(s)) for s in curve_specs], []
    for sl in study.shards(n_images):
        todo = [s.key() for s, c in configs if not finished({**c, "shard": [sl.start, sl.stop]}, study.cache_dir)]
        out += [(recipe, g, sl.start, sl.stop) for g in ([todo] if study.cfg.together else [[k] for k in todo]) if g]
    return out
