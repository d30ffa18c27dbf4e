"""Score-based black-box attacks: NES (Ilyas et al. 2018) and SPSA (Uesato et al. 2018).

Both see only the defended model's probability vector ``softmax(logits)``; every query is a
fresh stochastic forward pass (for the SEM: a fresh draw). The gradient of a margin loss on
log-probabilities is estimated from ``samples`` antithetic pairs ``x ± eta * u`` (NES: Gaussian
``u``, SPSA: Rademacher ``u``), i.e. ``2 * samples`` queries per example and iteration, until
the budget ``max_queries`` is spent. Queries are counted per example, exactly.
Update: NES takes signed (Linf) or normalized (L2) steps, SPSA Adam steps (as in Uesato et al.),
of size ``eps * max(lr_ratio, reach / iterations)``: the steps of one run add up to at least
``reach`` times eps (Madry et al.'s 2.5 eps / steps), so a small budget (few iterations) can
still reach the boundary of the eps ball.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..smoothing import call_classifier
from ..streams import bind, keyed
from ..settings import check_count, check_real
from .base import Attack, Norm, as_norm, direction, project


def margin_loss(log_probs: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Loss to ascend, ``[B]``: ``max_{j != y} log p_j - log p_y`` (untargeted) or
    ``log p_t - max_{j != t} log p_j`` (targeted)."""
    cls = y if target is None else target
    own = log_probs.gather(1, cls[:, None]).squeeze(1)
    other = log_probs.scatter(1, cls[:, None], float("-inf")).amax(1)
    return other - own if target is None else own - other


@dataclass
class QueryAttack(Attack):
    norm: Norm | str = Norm.LINF
    max_queries: int = 5000
    samples: int = 25  # antithetic pairs per gradient estimate
    eta: float = 0.01  # finite-difference radius in pixels
    lr_ratio: float = 0.05  # step size as a fraction of eps (at least reach / iterations)
    reach: float = 2.5  # the steps of one run add up to at least reach * eps
    chunk: int = 500
    rademacher: bool = False
    adam: bool = False

    def __post_init__(self) -> None:
        self.norm = as_norm(self.norm)
        check_count("samples", self.samples)
        check_count("max_queries", self.max_queries)
        check_count("chunk", self.chunk)
        check_real("eta", self.eta, open_lo=True)
        check_real("lr_ratio", self.lr_ratio, open_lo=True)
        check_real("reach", self.reach)
        if self.max_queries < 2 * self.samples:
            raise ValueError(f"need samples >= 1 and max_queries >= 2 * samples, got {self.samples}, "
                             f"{self.max_queries}")

    def _loss(self, model, x: torch.Tensor, y, target, generator, images: int) -> torch.Tensor:
        out = []
        for s in range(0, len(x), self.chunk):
            rows = torch.arange(s, min(s + self.chunk, len(x)))
            with torch.no_grad():  # probe p is a request of image p % B
                logits = call_classifier(model, x[s:s + self.chunk], bind(generator, len(rows), rows % images))
            out.append(margin_loss(logits.float().log_softmax(1), y[s:s + self.chunk],
                                   None if target is None else target[s:s + self.chunk]))
        return torch.cat(out)

    def estimate_gradient(self, model, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None,
                          generator: torch.Generator | None) -> torch.Tensor:
        """Antithetic finite-difference estimate of the loss gradient; spends ``2 * samples`` queries
        per example. ``[B, 3, H, W]``."""
        b, n = len(x), self.samples
        shape = (n, *x.shape)
        if keyed(generator):  # per-request streams: each image draws its own n directions
            fn = _signs if self.rademacher else torch.randn
            u = bind(generator, b).draw(fn, shape[:1] + shape[2:], x.device, x.dtype).transpose(0, 1)
        elif self.rademacher:
            u = torch.randint(0, 2, shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
        else:
            u = torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)
        probes = torch.cat([x[None] + self.eta * u, x[None] - self.eta * u]).flatten(0, 1)  # [2n*B, ...]
        rep = lambda t: None if t is None else t.repeat(2 * n)  # noqa: E731
        loss = self._loss(model, probes, rep(y), rep(target), generator, b).view(2, n, b)
        diff = (loss[0] - loss[1]) / (2 * self.eta)  # [n, B]
        return (diff.view(n, b, 1, 1, 1) * u).mean(0)

    def run(self, model, x, y, eps, target, generator):
        # no begin/step hooks: a score-based attacker sees fresh draws at every query
        iterations = self.max_queries // (2 * self.samples)
        lr = (max(self.lr_ratio, self.reach / iterations) * eps).view(-1, 1, 1, 1)
        x_adv = x.clone()
        m = torch.zeros_like(x)
        v = torch.zeros_like(x)
        b1, b2 = 0.9, 0.999
        for t in range(1, iterations + 1):
            g = self.estimate_gradient(model, x_adv, y, target, generator)
            if self.adam:
                m = b1 * m + (1 - b1) * g
                v = b2 * v + (1 - b2) * g * g
                step = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + 1e-8)
                step = step if self.norm is Norm.LINF else direction(step, self.norm)
            else:
                step = direction(g, self.norm)
            x_adv = project(x_adv + lr * step, x, eps, self.norm)
        return x_adv, self.spent(len(x), 0), self.spent(len(x), iterations * 2 * self.samples)


@dataclass
class NES(QueryAttack):
    """Natural evolution strategies: Gaussian antithetic probes, signed steps."""


@dataclass
class SPSA(QueryAttack):
    """Simultaneous perturbation: Rademacher probes, Adam updates."""

    rademacher: bool = True
    adam: bool = True


def _signs(shape, generator) -> torch.Tensor:
    """Rademacher signs (+-1) of ``shape``."""
    return torch.randint(0, 2, shape, generator=generator).float() * 2 - 1
