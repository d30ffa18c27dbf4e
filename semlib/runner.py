"""Where the units of work behind ``make reproduce`` run: one sub-model's training, one curve
shard (scenario x attack x goal x images). The notebook's ``EXECUTOR`` parameter chooses:
``{"kind": "local"}`` (the default) — a pool of single-thread worker processes, one per core of
this machine, with nothing to set up; ``{"kind": "serial"}`` — in this process, in order;
``{"kind": "ray"}`` — Ray tasks, on a local ``ray.init()`` or the cluster at ``address`` (Ray is
imported only then).

A task is a module-level function plus its arguments; it finds its own inputs (checkpoints,
data) by path and writes its result to the shared cache (atomically, with the hash manifest
last), so a task that dies midway is simply run again (Ray retries it) and finished tasks are
never redone. Seeds belong to the task's configuration, never to the worker or the order, so
the results do not depend on the executor.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from tqdm.auto import tqdm

from . import settings


KINDS = ("local", "serial", "ray")


@dataclass(frozen=True)
class Executor:
    """How to run tasks (the ``EXECUTOR`` notebook parameter).

    Parameters
    ----------
    kind : ``local`` (a pool of worker processes here), ``serial`` (here, in order) or ``ray``
    address : an existing Ray cluster (``ray://host:10001`` or ``auto``); None starts a local one
    num_cpus : cores the local pool or a local Ray uses (None: every core)
    cpus_per_task : cores (torch threads) per task
    gpus_per_task : GPUs asked per task (a fraction shares one); None (default) asks 1 where the
        cluster has GPUs and 0 where it has none. A task that got a GPU runs on it
        (:func:`semlib.device.resolve`'s auto), one that got none runs on the CPU
    max_retries : retries of a task whose worker died (Ray, local pool)
    """

    kind: str = "local"
    address: str | None = None
    num_cpus: int | None = None
    cpus_per_task: int = 1
    gpus_per_task: float | None = None
    max_retries: int = 3

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "EXECUTOR") -> "Executor":
        ex = settings.from_dict(cls, raw, source)
        if ex.kind not in KINDS:
            raise ValueError(f"{source}: kind must be one of {', '.join(KINDS)}, got {ex.kind!r}")
        if ex.cpus_per_task < 1 or (ex.num_cpus is not None and ex.num_cpus < 1) or ex.max_retries < 0:
            raise ValueError(f"{source}: cpus_per_task and num_cpus must be >= 1 and max_retries >= 0")
        if ex.gpus_per_task is not None and not (isinstance(ex.gpus_per_task, (int, float)) and ex.gpus_per_task >= 0):
            raise ValueError(f"{source}: gpus_per_task must be >= 0 (or null: 1 where the cluster has GPUs), "
                             f"got {ex.gpus_per_task}")
        return ex

    @property
    def serial(self) -> bool:
        return self.kind == "serial"


def run(fn: Callable, tasks: Sequence[tuple], executor: Executor | None = None, desc: str = "tasks",
        progress: bool = True) -> list:
    """``fn(*args)`` for every ``args`` in ``tasks``, results in the order of ``tasks``."""
    executor = executor or Executor()
    if executor.serial or not tasks:
        return [fn(*args) for args in tqdm(tasks, desc=desc, disable=not progress)]
    if executor.kind == "local":
        return _run_local(fn, tasks, executor, desc, progress)
    import ray  # only here: the serial path never needs it

    if not ray.is_initialized():
        kwargs = {"address": executor.address} if executor.address else {"num_cpus": executor.num_cpus}
        try:
            ray.init(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True, **kwargs)
        except ConnectionError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConnectionError(
                f"EXECUTOR address {executor.address!r}: cannot join the Ray cluster ({first}); check that it runs "
                f"('ray status' on the head node) and, for a token-protected cluster (Ray >= 2.59 protects the ones "
                f"it starts), set RAY_AUTH_MODE=token here with the cluster's token") from None
    gpus = executor.gpus_per_task
    if gpus is None:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) else 0
    remote = ray.remote(num_cpus=executor.cpus_per_task, num_gpus=gpus, max_retries=executor.max_retries)(
        _with_threads)
    refs = [remote.remote(executor.cpus_per_task, fn, *args) for args in tasks]
    done: dict = {}
    with tqdm(total=len(refs), desc=f"{desc} (ray)", disable=not progress) as bar:
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for r in ready:
                done[r] = ray.get(r)
                bar.update(1)
    return [done[r] for r in refs]


def _run_local(fn: Callable, tasks: Sequence[tuple], executor: Executor, desc: str, progress: bool) -> list:
    """The tasks on a pool of spawned worker processes (``cpus_per_task`` torch threads each,
    as many as the cores allow); a worker that dies breaks the pool: a new pool reruns the
    unfinished tasks, up to ``max_retries`` times."""
    cores = executor.num_cpus or os.cpu_count() or 1
    workers = max(1, min(len(tasks), cores // executor.cpus_per_task))
    done: dict[int, Any] = {}
    for attempt in range(executor.max_retries + 1):
        pending = [i for i in range(len(tasks)) if i not in done]
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_set_threads, initargs=(executor.cpus_per_task, os.getpid())) as pool, \
                    tqdm(total=len(tasks), initial=len(done), desc=f"{desc} (local x{workers})",
                         disable=not progress) as bar:
                futures = {pool.submit(fn, *tasks[i]): i for i in pending}
                for f in as_completed(futures):
                    done[futures[f]] = f.result()
                    bar.update(1)
            break
        except BrokenProcessPool:
            if attempt == executor.max_retries:
                raise RuntimeError(f"{desc}: a worker process died {attempt + 1} times (killed, or out of memory); "
                                   f"{len(tasks) - len(done)} of {len(tasks)} tasks unfinished, the finished ones "
                                   f"are kept in the cache — rerun to resume") from None
    return [done[i] for i in range(len(tasks))]


def _set_threads(threads: int, parent: int | None = None) -> None:
    """A local worker's start: its torch threads, and a watcher that ends the worker when the
    process that started it (``parent``: its pid, passed by that process, since it may already be
    gone when the worker starts) is gone — a killed notebook or pipeline: no one would read the
    worker's results, and an orphan would keep the cores busy."""
    import torch

    torch.set_num_threads(threads)
    parent = os.getppid() if parent is None else parent

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="semlib-parent-watch", daemon=True).start()


def _with_threads(threads: int, fn: Callable, *args):
    import torch

    torch.set_num_threads(threads)
    return fn(*args)

