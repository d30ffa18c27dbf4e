"""Per-request random streams: every random number of a request — one Monte-Carlo vote, one
EOT sample, one random start, one ensemble draw — comes from a generator of its own, seeded by
``(seed, image id, how many requests that image made before)``. So the numbers an image meets
do not depend on which other images share its batch, on how a batch is chunked or routed to
sub-models, on the shard it falls in or on the number of workers: only on the image's own
sequence of requests.

Pass a :class:`Streams` wherever a ``generator`` is taken. Code that replicates or chunks
rows binds them first (:func:`bind`: each row becomes a request with its own stream); code
that passes a subset of its images on selects it (:func:`select`); a model whose one request
draws several times (an ensemble's draw, then its members' noise) binds once and hands the
bound rows on, so a request's draws come from its one stream in a fixed order. A
``torch.Generator`` (or None) passes through all of these unchanged: the one shared stream.

Rows draw on the CPU (a generator per request) and move to the model's device.
"""
from __future__ import annotations

from typing import Sequence

import torch

_MASK = (1 << 64) - 1


def _mix(z: int) -> int:
    """SplitMix64's finalizer: distinct inputs give well-spread, practically distinct seeds."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


class RowStreams:
    """The streams of the rows of one batch: row ``r`` draws from ``generators[r]``."""

    def __init__(self, generators: Sequence[torch.Generator]):
        self.generators = list(generators)

    def __len__(self) -> int:
        return len(self.generators)

    def select(self, rows: torch.Tensor | slice) -> "RowStreams":
        """The streams of some rows (the same generators: a row's stream goes on where it was)."""
        if isinstance(rows, slice):
            return RowStreams(self.generators[rows])
        return RowStreams([self.generators[r] for r in rows.tolist()])

    def draw(self, fn, shape: Sequence[int], device=None, dtype=None) -> torch.Tensor:
        """``fn(shape, generator=...)`` per row, stacked: ``[len(self), *shape]``."""
        if not self.generators:
            return torch.empty((0, *shape), device=device, dtype=dtype)
        out = torch.stack([fn(tuple(shape), generator=g) for g in self.generators])
        return out.to(device=device, dtype=dtype)


class Streams:
    """Per-request streams of a set of images (:func:`bind` makes rows of them).

    Parameters
    ----------
    seed : the run's seed (e.g. from a curve's configuration, never from a shard or worker)
    ids : the images' ids (e.g. canonical test indices), by position; default the positions
    """

    def __init__(self, seed: int, ids: torch.Tensor | Sequence[int] | None = None, _counts: dict | None = None):
        self.seed = int(seed) & _MASK
        self.ids = None if ids is None else torch.as_tensor(ids, dtype=torch.long).cpu()
        self._counts = {} if _counts is None else _counts  # shared by every view: an image's requests so far

    def view(self, positions: torch.Tensor) -> "Streams":
        """The streams of the images at ``positions`` (ids kept, request counts shared)."""
        positions = torch.as_tensor(positions).cpu()
        return Streams(self.seed, positions if self.ids is None else self.ids[positions], self._counts)

    def rows(self, positions: torch.Tensor) -> RowStreams:
        """One new request per row, row ``r`` of the image at ``positions[r]``."""
        positions = torch.as_tensor(positions).cpu()
        ids = positions if self.ids is None else self.ids[positions]
        gens = []
        base = _mix(self.seed)
        for i in ids.tolist():
            c = self._counts.get(i, 0)
            self._counts[i] = c + 1
            g = torch.Generator()
            g.manual_seed(_mix(_mix(base ^ (i & _MASK)) ^ c) >> 1)
            gens.append(g)
        return RowStreams(gens)


def bind(generator, n: int, positions: torch.Tensor | None = None):
    """``n`` rows as requests: a :class:`Streams` becomes the :class:`RowStreams` of the images at
    ``positions`` (default ``0..n-1``); rows already bound must number ``n``; a torch generator
    (or None) is returned as it is."""
    if isinstance(generator, Streams):
        return generator.rows(torch.arange(n) if positions is None else positions)
    if isinstance(generator, RowStreams) and len(generator) != n:
        raise ValueError(f"{len(generator)} bound request streams for {n} rows")
    return generator


def select(generator, rows: torch.Tensor):
    """The generator of a subset of the images (or rows): a view of a :class:`Streams`, the
    selected rows of a :class:`RowStreams`, a torch generator unchanged."""
    if isinstance(generator, Streams):
        return generator.view(rows)
    if isinstance(generator, RowStreams):
        return generator.select(rows)
    return generator


def keyed(generator) -> bool:
    return isinstance(generator, (Streams, RowStreams))


def randn(shape: Sequence[int], generator, device=None, dtype=None) -> torch.Tensor:
    """``torch.randn(shape)``, row ``i`` (the first dimension) from its own stream when keyed."""
    if keyed(generator):
        return bind(generator, shape[0]).draw(torch.randn, shape[1:], device, dtype)
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)


def rand(shape: Sequence[int], generator, device=None, dtype=None) -> torch.Tensor:
    """``torch.rand(shape)``, row by row from their streams when keyed."""
    if keyed(generator):
        return bind(generator, shape[0]).draw(torch.rand, shape[1:], device, dtype)
    return torch.rand(tuple(shape), generator=generator, device=device, dtype=dtype)


def draw_generator(generator):
    """The generator the sampler draws from. Draws are sampled on the CPU: a CPU generator is
    used as it is (as are per-request streams, which draw there), a GPU generator through
    :func:`derived_cpu_generator`."""
    if generator is None or keyed(generator) or generator.device.type == "cpu":
        return generator
    return derived_cpu_generator(generator)


def derived_cpu_generator(generator: torch.Generator) -> torch.Generator:
    """A fresh CPU generator seeded by one draw of ``generator`` (on its own device): the same
    source state gives the same stream, the source moves on, the global RNG is never touched."""
    seed = torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)
    return torch.Generator().manual_seed(int(seed))
