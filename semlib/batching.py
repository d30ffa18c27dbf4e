"""Real batches for the sub-models: several computations (e.g. the curves of one image shard)
run together, each in a thread of its own, and every call of a network they share is batched
across them.

A computation that runs under :func:`run_together` hands its network calls to
:func:`call_networks` (``NoisyClassifier``, ``Ensemble`` and the SEM do: a SEM pass hands all its
members' calls at once). The thread then waits; when *every* live thread waits, the scheduler
runs each network once on the rows all of them asked of it (forward, and backward when the
thread's loss needs an input gradient: the backward of a batched call waits for the gradients of
every thread that took part and runs once on their concatenation). A thread's sequence of
calls, the moments the scheduler runs and the row order (by thread) are fixed, so a result
depends only on the computations grouped together, never on timing; it equals the one computed
alone up to floating-point order (a convolution's sums may be ordered differently for another
batch size). Random numbers are unaffected: per-request streams (:mod:`semlib.streams`) are
drawn by the threads, before their calls are handed over.

Outside :func:`run_together`, :func:`call_networks` simply calls the networks.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

_local = threading.local()


def call_networks(calls: Sequence[tuple[nn.Module, torch.Tensor]]) -> list[torch.Tensor]:
    """``[net(x) for net, x in calls]``, batched with other threads' calls under :func:`run_together`.
    Networks must be deterministic functions of their input, row by row (eval mode); gradients
    flow to every ``x`` that requires one."""
    scheduler: Scheduler | None = getattr(_local, "scheduler", None)
    if scheduler is None or not calls:
        return [net(x) for net, x in calls]
    nets, xs = [c[0] for c in calls], [c[1] for c in calls]
    if torch.is_grad_enabled() and any(x.requires_grad for x in xs):
        return list(_Batched.apply(scheduler, nets, *xs))
    return scheduler.submit(_Forward(nets, [x.detach() for x in xs], False, _autocast(xs[0])))


def run_together(tasks: Sequence[Callable[[], Any]], counts: "Counts | None" = None) -> list[Any]:
    """The results of ``tasks`` (functions without arguments), computed together with their
    network calls batched. The first exception of a task is raised once all have ended.
    ``counts``: collects the rows of every batched call (for benchmarks)."""
    return Scheduler(counts).run(tasks)


def run(tasks: Sequence[Callable[[], Any]], together: bool = True) -> list[Any]:
    """The results of ``tasks``: computed together (:func:`run_together`) when ``together`` and
    there are several, else one after the other in this thread."""
    return run_together(tasks) if together and len(tasks) > 1 else [task() for task in tasks]


@dataclass
class Counts:
    """Rows per batched network call (``rows``) and the number of barriers (``rounds``)."""

    rows: list[int] = field(default_factory=list)
    rounds: int = 0


def _autocast(x: torch.Tensor) -> tuple[str, bool, torch.dtype]:
    """The calling thread's autocast state for ``x``'s device (thread-local: the scheduler copies it)."""
    kind = x.device.type
    return kind, torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind)


@dataclass
class _Forward:
    nets: list[nn.Module]
    xs: list[torch.Tensor]
    grad: bool
    autocast: tuple[str, bool, torch.dtype]
    result: Any = None


@dataclass
class _Backward:
    parts: list["_Part"]
    grads: list[torch.Tensor]
    result: Any = None


@dataclass(eq=False)
class _Graph:
    """One batched call and its autograd graph (alive while some taker's autograd node holds it)."""

    out: torch.Tensor
    x: torch.Tensor
    takers: dict[tuple[int, int], slice]  # (thread, call of its bundle) -> its rows
    done: set = field(default_factory=set)


@dataclass(eq=False)
class _Part:
    graph: _Graph
    key: tuple[int, int]


class _Batched(torch.autograd.Function):
    """A bundle of network calls as one autograd node: forward and backward go to the scheduler."""

    @staticmethod
    def forward(ctx, scheduler, nets, *xs):
        outs, parts = scheduler.submit(_Forward(nets, [x.detach() for x in xs], True, _autocast(xs[0])))
        ctx.scheduler, ctx.parts = scheduler, parts
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        return (None, None) + tuple(ctx.scheduler.submit(_Backward(ctx.parts, list(grads))))


class Scheduler:
    """Runs tasks in threads and their network calls in batches (see the module docstring)."""

    def __init__(self, counts: Counts | None = None):
        self.counts = counts
        self._cv = threading.Condition()
        self._waiting: dict[int, Any] = {}  # thread -> its pending request
        self._live: set[int] = set()
        self._broken: BaseException | None = None
        self._serving: dict[int, Any] = {}  # the requests being run

    def run(self, tasks: Sequence[Callable[[], Any]]) -> list[Any]:
        results: list[Any] = [None] * len(tasks)
        errors: list[BaseException | None] = [None] * len(tasks)

        def work(i: int) -> None:
            _local.scheduler, _local.thread = self, i
            try:
                results[i] = tasks[i]()
            except BaseException as e:  # noqa: BLE001 - re-raised below, in the caller's thread
                errors[i] = e
            finally:
                _local.scheduler = None
                with self._cv:
                    self._live.discard(i)
                    self._cv.notify_all()

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(tasks))]
        self._live = set(range(len(tasks)))
        for t in threads:
            t.start()
        try:
            self._serve()
        except BaseException as e:  # e.g. KeyboardInterrupt: release every thread, then stop
            with self._cv:
                self._broken = e
                for req in [*self._waiting.values(), *self._serving.values()]:
                    req.result, req.done = e, True
                self._cv.notify_all()
            raise
        for t in threads:
            t.join()
        for e in errors:
            if e is not None:
                raise e
        return results

    def _serve(self) -> None:
        """Whenever every live thread waits, run what they asked for; until none is left."""
        while True:
            with self._cv:
                self._cv.wait_for(lambda: len(self._waiting) == len(self._live))
                if not self._live:
                    return
                batch, self._waiting = self._waiting, {}
                self._serving = batch
            try:
                self._execute(batch)
            except Exception as e:  # noqa: BLE001 - every waiting thread gets the error
                for req in batch.values():
                    req.result = e
            with self._cv:
                for req in batch.values():
                    req.done = True
                self._cv.notify_all()

    def submit(self, request):
        """Hand ``request`` over and wait for its turn (called by a task's thread)."""
        i = _local.thread
        request.done = False
        with self._cv:
            if self._broken is not None:
                raise RuntimeError("the batched run was interrupted") from self._broken
            self._waiting[i] = request
            self._cv.notify_all()
            self._cv.wait_for(lambda: request.done)
        if isinstance(request.result, BaseException):
            raise request.result
        return request.result

    def _execute(self, batch: dict[int, Any]) -> None:
        if self.counts is not None:
            self.counts.rounds += 1
        order = sorted(batch)  # rows in thread order: the batch is the same whatever the timing
        self._backward({i: batch[i] for i in order if isinstance(batch[i], _Backward)})
        forwards = {i: batch[i] for i in order if isinstance(batch[i], _Forward)}
        groups: dict[tuple, list[tuple[int, int]]] = {}  # (net, grad, autocast) -> (thread, call)
        for i, req in forwards.items():
            req.result = ([None] * len(req.nets), [None] * len(req.nets))
            for j, net in enumerate(req.nets):
                groups.setdefault((id(net), req.grad, req.autocast), []).append((i, j))
        for (_, grad, (kind, cast, dtype)), takers in groups.items():
            net = forwards[takers[0][0]].nets[takers[0][1]]
            xs = [forwards[i].xs[j] for i, j in takers]
            x = torch.cat(xs) if len(xs) > 1 else xs[0]
            if self.counts is not None:
                self.counts.rows.append(len(x))
            with torch.set_grad_enabled(grad), torch.autocast(kind, dtype=dtype, enabled=cast):
                if grad:
                    x = x.detach().requires_grad_(True)
                out = net(x)
            graph = _Graph(out, x, {}) if grad else None
            start = 0
            for (i, j), xi in zip(takers, xs):
                rows = slice(start, start + len(xi))
                start += len(xi)
                forwards[i].result[0][j] = out[rows].detach()
                if graph is not None:
                    graph.takers[(i, j)] = rows
                    forwards[i].result[1][j] = _Part(graph, (i, j))
        for req in forwards.values():
            if not req.grad:
                req.result = req.result[0]

    def _backward(self, requests: dict[int, _Backward]) -> None:
        """Every graph some thread wants gradients of, once; the rows of takers that have not
        asked get zero gradients, and the graph is kept for them while their thread lives."""
        asked: dict[_Graph, dict[tuple[int, int], torch.Tensor]] = {}
        for req in requests.values():
            for part, g in zip(req.parts, req.grads):
                asked.setdefault(part.graph, {})[part.key] = g
        grads: dict[tuple[int, tuple[int, int]], torch.Tensor] = {}
        for graph, by_key in asked.items():
            g = torch.zeros_like(graph.out)
            for key, gk in by_key.items():
                g[graph.takers[key]] = gk
            graph.done |= set(by_key)
            keep = any(key[0] in self._live and key not in graph.done for key in graph.takers)
            (gx,) = torch.autograd.grad(graph.out, graph.x, g, retain_graph=keep)
            for key in by_key:
                grads[(id(graph), key)] = gx[graph.takers[key]]
        for req in requests.values():
            req.result = [grads[(id(p.graph), p.key)] for p in req.parts]
