"""Ensembles of zoo sub-models: fixed (contrast H), ensemble-smoothed with weights (contrast F),
and the stochastic ensemble with variable attributes (SEM, the paper's Algorithm 1).

All are stochastic classifiers ``forward(x, generator) -> logits`` on pixels in [0, 1],
``[B, 3, 32, 32]``; an ensemble's logits are the (weighted) sum of its members' logits, so
``softmax(forward(x))`` is the paper's output. Members are :class:`~semlib.smoothing.NoisyClassifier`
objects: each adds its own noise ``delta_k ~ N(0, sigma_k^2 I)`` on every call.

**Requests.** For the SEM one *request* is one image: a batch of B images is B requests, each
with its own independent draw of the ensemble (K, families, variants, sigmas) and of the noise.
This makes Monte-Carlo votes over copies of an image independent however the copies are batched.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from .batching import call_networks
from .smoothing import NoisyClassifier, call_classifier
from .streams import bind, draw_generator, keyed, rand, select


class Ensemble(nn.Module):
    """Fixed members, logits summed (optionally weighted by ``weights`` ``[K]``).

    With unsmoothed members this is contrast H; with members trained and evaluated at a sigma
    (each on its own noisy copy) it is the ensemble-smoothed model of contrast F.
    """

    def __init__(self, members: Sequence[nn.Module], weights: torch.Tensor | Sequence[float] | None = None,
                 names: Sequence[str] | None = None):
        super().__init__()
        if len(members) == 0:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        w = torch.ones(len(members)) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if w.shape != (len(members),) or bool((w < 0).any()):
            raise ValueError(f"weights must be {len(members)} non-negative numbers, got {w.tolist()}")
        self.register_buffer("weights", w)
        self.names = list(names) if names is not None else [getattr(m, "name", f"m{i}") for i, m in enumerate(members)]

    @property
    def deterministic(self) -> bool:
        return all(getattr(m, "deterministic", True) for m in self.members)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        out = None
        generator = bind(generator, len(x))  # a request's members draw from its one stream, in turn
        for w, z in zip(self.weights, call_members([(m, x, generator) for m in self.members])):
            out = w * z if out is None else out + w * z
        return out


def call_members(calls: list[tuple[nn.Module, torch.Tensor, torch.Generator | None]]) -> list[torch.Tensor]:
    """``[call_classifier(m, x, g) for m, x, g in calls]``, randomness drawn in that order; the
    networks of noisy members are then called together (batched: :mod:`semlib.batching`)."""
    out: list[torch.Tensor | None] = []
    plain = []
    for m, x, g in calls:
        if isinstance(m, NoisyClassifier) and m.network is not None:
            plain.append((len(out), m.network, m.perturb(x, g)))
            out.append(None)
        else:
            out.append(call_classifier(m, x, g))
    for (i, _, _), z in zip(plain, call_networks([(net, x) for _, net, x in plain])):
        out[i] = z
    return out


def fit_weights(ensemble: Ensemble, x: torch.Tensor, y: torch.Tensor, *, steps: int = 100, lr: float = 0.05,
                batch_size: int = 256, generator: torch.Generator | None = None) -> torch.Tensor:
    """SWEEN-style weights: minimize the cross-entropy of ``softmax(sum_k w_k f_k(x + delta_k))`` on
    held-out images ``x`` ``[N, 3, 32, 32]`` over ``w`` on the simplex (softmax-parameterized,
    scaled by K so uniform weights are all ones). Member logits are precomputed once (fresh
    noise per member); sets and returns ``ensemble.weights``."""
    k = len(ensemble.members)
    with torch.no_grad():
        logits = torch.stack([torch.cat([call_classifier(m, x[s:s + batch_size], generator)
                                         for s in range(0, len(x), batch_size)]) for m in ensemble.members])
    theta = torch.zeros(k, device=logits.device, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    for _ in range(steps):
        w = k * theta.softmax(0)
        loss = nn.functional.cross_entropy((w[:, None, None] * logits).sum(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ensemble.weights.copy_((k * theta.softmax(0)).detach())
    return ensemble.weights


@dataclass(frozen=True)
class Realization:
    """One drawn ensemble: ``k`` members, by name (with their families and sigmas)."""

    k: int
    members: tuple[str, ...]


class SEMSampler:
    """Algorithm 1's draw, vectorized over requests.

    1. ``K ~ Uniform{k_min..k_max}``;
    2. K distinct families, uniformly without replacement (if the collection has fewer
       families than K: K distinct sub-models uniformly instead);
    3. for each family, one of its sub-models (variant and sigma) uniformly.

    Parameters
    ----------
    names, families : the collection's sub-model names and their families (same length)
    k_range : (k_min, k_max), 1 <= k_min <= k_max <= len(names)
    """

    def __init__(self, names: Sequence[str], families: Sequence[str], k_range: tuple[int, int] = (1, 4)):
        if len(names) == 0 or len(names) != len(families):
            raise ValueError(f"a collection needs names and families of equal, non-zero length; "
                             f"got {len(names)} names and {len(families)} families")
        k_min, k_max = k_range
        if not (1 <= k_min <= k_max):
            raise ValueError(f"K range must satisfy 1 <= K_min <= K_max, got {k_range}")
        if k_max > len(names):
            raise ValueError(f"K_max = {k_max} exceeds the collection's {len(names)} sub-models")
        self.names, self.families = list(names), list(families)
        self.k_min, self.k_max = k_min, k_max
        self.family_names = sorted(set(families))
        fam_index = torch.tensor([self.family_names.index(f) for f in families])
        self.members_of = [torch.nonzero(fam_index == i).flatten() for i in range(len(self.family_names))]
        self.family_sizes = torch.tensor([len(m) for m in self.members_of])
        # member_table[f, i]: collection index of family f's i-th sub-model (padded with -1)
        self.member_table = torch.full((len(self.members_of), int(self.family_sizes.max())), -1, dtype=torch.long)
        for i, members in enumerate(self.members_of):
            self.member_table[i, : len(members)] = members

    def draw(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Membership masks of ``n`` independent draws: bool ``[n, M]`` (M = collection size)."""
        m, f = len(self.names), len(self.family_names)
        if keyed(generator):  # per-request streams: each draw from its own uniforms (K, then orders, picks)
            u = rand((n, 1 + max(2 * f, m)), generator)
            k = self.k_min + (u[:, 0] * (self.k_max - self.k_min + 1)).long().clamp(max=self.k_max - self.k_min)
            return self._masks(k, lambda rows, lo, width: u[rows, 1 + lo:1 + lo + width])
        k = torch.randint(self.k_min, self.k_max + 1, (n,), generator=generator)
        return self._masks(k, lambda rows, lo, width: torch.rand(len(rows), width, generator=generator))

    def _masks(self, k: torch.Tensor, uniforms) -> torch.Tensor:
        """The draws of sizes ``k`` ``[n]``; ``uniforms(rows, offset, width)``: those rows' uniforms
        for the family order (offset 0), the picks (offset F) or the sub-model order (0, width M)."""
        m, f = len(self.names), len(self.family_names)
        mask = torch.zeros(len(k), m, dtype=torch.bool)
        by_family = k <= f
        if bool(by_family.any()):
            rows = torch.nonzero(by_family).flatten()
            # a uniformly random order of families per request; the first K are chosen
            order = uniforms(rows, 0, f).argsort(1)
            chosen = torch.arange(f)[None, :] < k[rows, None]
            # one sub-model per family, uniformly among that family's members
            pick = (uniforms(rows, f, f) * self.family_sizes[order]).long()
            r, c = torch.nonzero(chosen, as_tuple=True)
            mask[rows[r], self.member_table[order[r, c], pick[r, c]]] = True
        if bool((~by_family).any()):
            rows = torch.nonzero(~by_family).flatten()
            order = uniforms(rows, 0, m).argsort(1)
            chosen = torch.arange(m)[None, :] < k[rows, None]
            r, c = torch.nonzero(chosen, as_tuple=True)
            mask[rows[r], order[r, c]] = True
        return mask

    def inclusion(self) -> torch.Tensor:
        """P(sub-model m is in a draw), exact, float64 ``[M]``: averaged over the uniform K, its
        family is among the K chosen with probability K / F and then it with 1 / (family size);
        with more K than families, K / M."""
        size = self.family_sizes[torch.tensor([self.family_names.index(f) for f in self.families])].double()
        k = torch.arange(self.k_min, self.k_max + 1, dtype=torch.float64)[:, None]
        f, m = len(self.family_names), len(self.names)
        return torch.where(k <= f, k / f / size, k / m).mean(0)

    def realizations(self, mask: torch.Tensor) -> list[Realization]:
        return [Realization(int(row.sum()), tuple(self.names[i] for i in torch.nonzero(row).flatten()))
                for row in mask]


class StochasticEnsemble(nn.Module):
    """The SEM defended model: every request (image) gets a fresh draw and fresh noise.

    ``forward(x, generator)`` returns ``sum_k f_k(x + delta_k)`` over each image's own drawn
    members. ``last_draw`` (bool ``[B, M]``) is the most recent batch's realization, visible to an
    attacker that "sees each realized ensemble" (attacker A); ``history`` keeps the draws of
    the last ``history_size`` forward calls (bool masks; :meth:`realizations` lists them as
    K and member names) — masks, because building names for every vote would cost more than
    the votes.

    Parameters
    ----------
    members : dict name -> NoisyClassifier (the admitted collection)
    families : dict name -> family
    k_range : (K_min, K_max), paper 1..4 (Sec. 4.5 study: 6..8)
    """

    def __init__(self, members: dict[str, NoisyClassifier], families: dict[str, str],
                 k_range: tuple[int, int] = (1, 4), history_size: int = 10_000):
        super().__init__()
        names = list(members)
        missing = [n for n in names if n not in families]
        if missing:
            raise ValueError(f"no family given for sub-models {missing}")
        self.sampler = SEMSampler(names, [families[n] for n in names], k_range)
        self.members = nn.ModuleList(members[n] for n in names)
        self.last_draw: torch.Tensor | None = None
        self.history: deque[torch.Tensor] = deque(maxlen=history_size)

    @property
    def names(self) -> list[str]:
        return self.sampler.names

    @property
    def fanout(self) -> int:
        """Rows of a call per row each sub-model sees (M / E[K]): callers pass this many times
        their usual chunk, so the sub-models still get full batches."""
        return max(1, round(len(self.names) / float(self.sampler.inclusion().sum())))

    def draw(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        mask = self.sampler.draw(n, generator)
        if self.history.maxlen:
            self.history.append(mask)
        return mask

    def realizations(self) -> list[Realization]:
        """Every recorded draw (oldest first) as K and member names."""
        return [r for mask in self.history for r in self.sampler.realizations(mask)]

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        generator = bind(generator, len(x))  # one request per row: its draw, then its members' noise
        mask = self.draw(len(x), draw_generator(generator))
        self.last_draw = mask
        return self.forward_with(x, mask, generator)

    def forward_with(self, x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
        """Logits of a given realization per image: ``mask`` bool ``[B, M]``, fresh noise."""
        out = None
        mask = mask.to(x.device)
        generator = bind(generator, len(x))
        rows = [torch.nonzero(mask[:, j]).flatten() for j in range(len(self.members))]
        calls = [(m, x[r], select(generator, r.cpu())) for m, r in zip(self.members, rows) if len(r)]
        for r, z in zip([r for r in rows if len(r)], call_members(calls)):  # members' networks batched
            out = (x.new_zeros(len(x), z.shape[1]) if out is None else out).index_add(0, r, z)
        return out


class HeldDraws(nn.Module):
    """An attacker's view of a SEM during one attack run.

    The realization of each attacked image is held and redrawn every ``period`` attack steps;
    smoothing noise stays fresh on every pass, so the attack's EOT averages over noise (and,
    with ``pool > 1`` realizations held per image and used in turn, over draws too).

    * attacker A: ``period=1`` — at every iteration the SEM draws a new realization, which the
      attacker sees (it becomes the SEM's ``last_draw``) but cannot predict;
    * attacker B: ``period=P`` — its own realizations from the same distribution, refreshed
      every P iterations.

    Outside an attack run (plain ``forward``) it is the defended SEM itself: fresh draws.
    """

    def __init__(self, sem: StochasticEnsemble, period: int = 1, pool: int = 1):
        super().__init__()
        if period < 1 or pool < 1:
            raise ValueError(f"period and pool must be >= 1, got {period}, {pool}")
        self.sem, self.period, self.pool = sem, period, pool
        self.masks: list[torch.Tensor] = []
        self._n = 0
        self._calls = 0

    def on_attack_start(self, n: int, generator: torch.Generator | None = None) -> None:
        self._n, self.masks, self._calls = n, [], 0

    def on_attack_step(self, step: int, generator: torch.Generator | None = None) -> None:
        if step % self.period == 0 or not self.masks:
            self.masks = [self.sem.draw(self._n, draw_generator(generator)) for _ in range(self.pool)]
            self.sem.last_draw = self.masks[0]

    def forward_indexed(self, x: torch.Tensor, index: torch.Tensor, generator: torch.Generator | None = None
                        ) -> torch.Tensor:
        mask = self.masks[self._calls % self.pool][index.cpu()]
        self._calls += 1
        return self.sem.forward_with(x, mask, bind(generator, len(x), index.cpu()))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sem(x, generator)

    @property
    def fanout(self) -> int:
        return self.sem.fanout
