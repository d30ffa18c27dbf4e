"""The on-disk store of results: a result is a CSV keyed by the sha256 of its configuration,
finished only when its manifest (the configuration and the CSV's hash) is written, last and
atomically; work done in shards resumes at the first unfinished one. The random numbers come
from the configuration alone, never from the order of the work: per image and request
(:func:`request_streams`, independent of the shards too) or per shard (:func:`shard_generator`).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from tqdm.auto import tqdm

from . import device as devices, artifacts
from .settings import is_int
from .streams import Streams


_READS: list[tuple[float, float]] = []  # (when read, when its manifest was written) of each result read back


def reuse_since(start: float) -> dict[str, int]:
    """How many finished results this process read back from the cache since ``start`` (a
    ``time.time()``) and how many of those earlier runs had computed (manifest written before
    ``start``): a run that reused earlier work took less time than one from an empty cache."""
    reads = [written for when, written in _READS if when >= start]
    return {"results_read": len(reads), "from_earlier_runs": sum(written < start for written in reads)}


def cache_key(config: dict[str, Any]) -> str:
    """A stable hash of a JSON-able configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _as_json(config: dict[str, Any]) -> Any:
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def finished(config: dict[str, Any], cache_dir: str | os.PathLike) -> bool:
    """Whether the cache holds a complete result for ``config``: its CSV and a manifest that
    records this very configuration and the CSV's hash. A crash between the two writes, a
    damaged CSV, a manifest of another configuration (a file copied or renamed under this key)
    or one of the wrong shape reads as unfinished, and the result is computed again."""
    key = cache_key(config)
    path, manifest = Path(cache_dir) / f"{key}.csv", Path(cache_dir) / f"{key}.json"
    if not (path.is_file() and manifest.is_file()):
        return False
    try:
        record = json.loads(manifest.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    if not (isinstance(record, dict) and isinstance(record.get("sha256"), str)
            and record.get("config") == _as_json(config)):
        return False
    return record["sha256"] == artifacts.sha256_file(path)


def cached(config: dict[str, Any], compute: Callable[[], pd.DataFrame], cache_dir: str | os.PathLike,
           info: dict[str, Any] | None = None) -> pd.DataFrame:
    """Return the cached result of ``config`` or compute it and store it.

    Storage: ``<key>.csv`` written atomically, then the manifest ``<key>.json`` (the config and
    the CSV's sha256) written atomically last. A result counts as finished only when its
    manifest exists and the CSV's hash matches it; anything else (a crash between the two
    writes, a truncated or edited CSV) is computed again. ``info`` (e.g. the device) is
    recorded in the manifest, not in the key. A fresh result is returned as it was stored (read
    back), so a run that resumes from the cache gets exactly what an uninterrupted one got
    (e.g. an empty string reads back as NaN, either way).
    """
    cache_dir = Path(cache_dir)
    key = cache_key(config)
    path, manifest = cache_dir / f"{key}.csv", cache_dir / f"{key}.json"
    if finished(config, cache_dir):
        _READS.append((time.time(), manifest.stat().st_mtime))
        return pd.read_csv(path)
    df = compute()
    cache_dir.mkdir(parents=True, exist_ok=True)
    artifacts.atomic_write_text(path, df.to_csv(index=False))
    record = {"config": config, "sha256": artifacts.sha256_file(path)}
    artifacts.write_json(manifest, {**record, "computed_on": info} if info else record)
    return pd.read_csv(path)


def shard_config(config: dict[str, Any], sl: slice) -> dict[str, Any]:
    """The key of one shard's result: ``config`` plus the shard's image range."""
    return {**config, "shard": [sl.start, sl.stop]}


def missing_span(config: dict[str, Any], shards: list[slice], cache_dir: str | os.PathLike) -> slice | None:
    """The images from the first to the last of ``shards`` (consecutive) whose result
    (:func:`shard_config`) the cache lacks; None when it holds them all."""
    todo = [sl for sl in shards if not finished(shard_config(config, sl), cache_dir)]
    return slice(todo[0].start, todo[-1].stop) if todo else None


def cached_split(config: dict[str, Any], shards: list[slice], span: slice | None, rows: pd.DataFrame | None,
                 cache_dir: str | os.PathLike, info: dict[str, Any] | None = None) -> list[pd.DataFrame]:
    """Each shard's result (:func:`shard_config`): read when the cache holds it, else cut from
    ``rows``, one row per image of ``span`` in order (:func:`missing_span`), and stored."""
    if rows is not None and len(rows) != span.stop - span.start:
        raise RuntimeError(f"{len(rows)} rows for the {span.stop - span.start} images {span.start}..{span.stop - 1}")

    def part(sl: slice) -> pd.DataFrame:
        if rows is None or not span.start <= sl.start <= sl.stop <= span.stop:
            raise RuntimeError(f"images {sl.start}..{sl.stop - 1} are neither cached nor computed; rerun to compute them")
        return rows.iloc[sl.start - span.start:sl.stop - span.start].reset_index(drop=True)
    return [cached(shard_config(config, sl), functools.partial(part, sl), cache_dir, info) for sl in shards]


def cached_shards(config: dict[str, Any], n: int, compute: Callable[[slice], pd.DataFrame],
                  cache_dir: str | os.PathLike, shard_size: int = 50, progress: bool = False,
                  info: dict[str, Any] | None = None) -> pd.DataFrame:
    """Compute ``compute(slice)`` for consecutive shards of ``n`` examples, each cached under its
    own key (``config`` plus the shard's range), and concatenate. An interrupted run resumes at
    the first unfinished shard; a finished one is free. ``compute`` must seed its randomness
    from the shard (not from the order of calls) so resumed and uninterrupted runs agree."""
    if not (is_int(shard_size) and shard_size >= 1):
        raise ValueError(f"shard_size must be >= 1, got {shard_size!r}")
    parts = []
    for start in tqdm(range(0, n, shard_size), desc="shards", disable=not progress):
        sl = slice(start, min(n, start + shard_size))
        parts.append(cached(shard_config(config, sl), lambda sl=sl: compute(sl), cache_dir, info))
    return pd.concat(parts, ignore_index=True)


def shard_generator(config: dict[str, Any], sl: slice, device: str | torch.device = "cpu") -> torch.Generator:
    """The generator of one shard on ``device``: seeded by the configuration and the shard's
    range, so the draws do not depend on the order, the process or the executor that computes it."""
    return devices.generator(torch.device(device), int(cache_key(shard_config(config, sl))[:12], 16))


def request_streams(config: dict[str, Any], ids) -> Streams:
    """Per-request streams (:class:`semlib.streams.Streams`) of the images ``ids`` (canonical
    indices), seeded by the configuration alone: an image meets the same numbers in any shard."""
    return Streams(int(cache_key({**config, "draws": "per-request"})[:12], 16), ids)
