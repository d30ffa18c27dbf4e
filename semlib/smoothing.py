"""Gaussian smoothing: noisy sub-models, Monte-Carlo votes, Cohen's ``predict`` and ``certify``.

A *stochastic classifier* here is any callable ``f(x, generator) -> logits`` with ``x`` pixels
in [0, 1], ``[B, 3, 32, 32]``, and logits ``[B, C]``; each call may draw fresh randomness from
``generator`` (smoothing noise, an ensemble draw). :class:`NoisyClassifier` turns a zoo model
and a sigma into one. Plain modules (deterministic) are accepted everywhere too.

Noise space (``noise_space``):

``"pixel"`` (default)
    ``x + N(0, sigma^2 I)`` in pixel units, what Cohen et al.'s certificate assumes.
``"normalized"``
    noise of std ``sigma`` added *after* the model's normalization layer. Because that layer
    is ``(x - mean) / std_c``, this equals pixel noise with per-channel std ``sigma * std_c``
    (about ``sigma / 4`` on CIFAR-10); we add it in pixel space with that scale. Cohen's
    certificate holds where the noise is isotropic, i.e. in normalized units; a pixel
    perturbation ``d`` moves the normalized image by ``d_c / std_c``, so a normalized radius
    ``R`` certifies at least the pixel L2 radius ``R * min_c std_c`` (:func:`pixel_radius`).
"""
from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Protocol

import torch
from scipy.stats import binomtest, norm
from scipy.stats import beta as beta_dist
from torch import nn

from .batching import call_networks
from .inputs import NUM_CLASSES, check_images, check_labels  # noqa: F401  (smoothing.check_* is public)
from .models import CIFAR10_STD
from .settings import is_finite, is_real
from .streams import bind, randn

ABSTAIN = -1


class NoiseSpace(str, Enum):
    PIXEL = "pixel"
    NORMALIZED = "normalized"


class StochasticClassifier(Protocol):
    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor: ...


def noise_space(value: str | NoiseSpace) -> NoiseSpace:
    try:
        return NoiseSpace(value)
    except ValueError:
        raise ValueError(f"noise_space must be one of {[s.value for s in NoiseSpace]}, got {value!r}") from None


def check_sigma(sigma: float) -> float:
    """``sigma`` as a float; one clear error if it is not a finite number >= 0."""
    if not (is_finite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    return float(sigma)


def pixel_noise_std(sigma: float, space: str | NoiseSpace, like: torch.Tensor) -> torch.Tensor:
    """Per-channel pixel-space noise std, ``[1, 3, 1, 1]``, on ``like``'s device and dtype."""
    sigma = check_sigma(sigma)
    if noise_space(space) is NoiseSpace.PIXEL:
        std = torch.full((3,), sigma)
    else:
        std = sigma * torch.tensor(CIFAR10_STD)
    return std.view(1, 3, 1, 1).to(device=like.device, dtype=like.dtype)


def pixel_radius(radius: torch.Tensor | float, space: str | NoiseSpace):
    """A pixel-space L2 radius certified by ``radius`` (Cohen's radius in the noise's own space):
    the radius itself for pixel noise; ``radius * min_c std_c`` (a lower bound) for normalized noise."""
    return radius * (1.0 if noise_space(space) is NoiseSpace.PIXEL else min(CIFAR10_STD))


def add_noise(x: torch.Tensor, sigma: float, space: str | NoiseSpace = NoiseSpace.PIXEL,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """``x + delta``, ``delta ~ N(0, diag(std^2))`` drawn from ``generator``; ``x`` unchanged if sigma = 0."""
    if sigma == 0:
        return x
    noise = randn(x.shape, generator, device=x.device, dtype=x.dtype)  # per request when keyed
    return x + noise * pixel_noise_std(sigma, space, x)


class NoisyClassifier(nn.Module):
    """A sub-model ``(f, sigma)``: ``forward(x, generator)`` returns ``f(x + delta)``, fresh delta per call.

    With ``sigma = 0`` it is the deterministic base model. Gradients flow to ``x``.
    """

    def __init__(self, base: nn.Module, sigma: float, space: str | NoiseSpace = NoiseSpace.PIXEL):
        super().__init__()
        self.base = base
        self.sigma = check_sigma(sigma)
        self.noise_space = noise_space(space)

    @property
    def deterministic(self) -> bool:
        return self.sigma == 0

    @property
    def network(self) -> nn.Module | None:
        """The base when it is a plain network (its calls can be batched: :mod:`semlib.batching`)."""
        return None if accepts_generator(self.base) else self.base

    def perturb(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return add_noise(x, self.sigma, self.noise_space, bind(generator, len(x)))  # one request per row

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.network is not None:
            return call_networks([(self.base, self.perturb(x, generator))])[0]
        generator = bind(generator, len(x))  # a random base (e.g. a SEM) draws after the noise, same stream
        return self.base(self.perturb(x, generator), generator)


def deterministic(model: Callable) -> bool:
    """Whether ``model`` declares it has no randomness (judged with one vote, attacked without EOT)."""
    return bool(getattr(model, "deterministic", False))


def accepts_generator(classifier: Callable) -> bool:
    """Whether ``classifier`` takes a ``generator`` argument (stochastic) or only ``x``."""
    if isinstance(classifier, nn.Module):  # decided by the class: cached, this is on every forward pass
        return _forward_accepts_generator(type(classifier))
    return _signature_has_generator(classifier)


@functools.lru_cache(maxsize=None)
def _forward_accepts_generator(cls: type) -> bool:
    return _signature_has_generator(cls.forward)


def _signature_has_generator(fn: Callable) -> bool:
    try:
        return "generator" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def call_classifier(classifier: Callable, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Logits of one (stochastic) forward pass; plain deterministic modules get ``x`` only."""
    return classifier(x, generator) if accepts_generator(classifier) else classifier(x)



@torch.no_grad()
def mc_counts(classifier: Callable, x: torch.Tensor, n: int, num_classes: int = 10, *,
              batch_size: int = 256, generator: torch.Generator | None = None) -> torch.Tensor:
    """Class votes of ``n`` stochastic hard predictions per image.

    Parameters
    ----------
    classifier : stochastic classifier (fresh noise / draw on every call)
    x : ``[B, 3, H, W]`` pixels in [0, 1]
    n : draws per image, >= 1
    batch_size : images per forward pass (copies of several images are packed together)

    Returns
    -------
    counts : int64 ``[B, num_classes]``, each row summing to ``n``
    """
    check_images(x)
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise ValueError(f"n (Monte-Carlo draws) must be an integer >= 1, got {n!r}")
    b = x.shape[0]
    counts = torch.zeros(b, num_classes, dtype=torch.long, device=x.device)
    for start in range(0, b * n, batch_size):
        # image index of draws start.. (image-major), built per pass: b * n can be 5e7 (paper ACA)
        idx = torch.arange(start, min(b * n, start + batch_size), device=x.device) // n
        pred = call_classifier(classifier, x[idx], bind(generator, len(idx), idx)).argmax(1)
        counts.index_put_((idx, pred), torch.ones_like(pred), accumulate=True)
    return counts


def predict(classifier: Callable, x: torch.Tensor, n: int, alpha: float, num_classes: int = 10, *,
            batch_size: int = 256, generator: torch.Generator | None = None) -> torch.Tensor:
    """Cohen et al.'s ``PREDICT``: the top class if a two-sided binomial test says it beats the runner-up.

    Returns the top class per image, or :data:`ABSTAIN`; the probability of returning a class
    other than the smoothed classifier's top class is at most ``alpha``.
    Returns int64 ``[B]``.
    """
    _check_alpha(alpha)
    counts = mc_counts(classifier, x, n, num_classes, batch_size=batch_size, generator=generator).cpu()
    top2 = counts.topk(2, dim=1)
    out = torch.full((x.shape[0],), ABSTAIN, dtype=torch.long)
    for i in range(x.shape[0]):
        na, nb = int(top2.values[i, 0]), int(top2.values[i, 1])
        if binomtest(na, na + nb, 0.5).pvalue <= alpha:
            out[i] = int(top2.indices[i, 0])
    return out.to(x.device)


def lower_confidence_bound(k: torch.Tensor, n: int, alpha: float) -> torch.Tensor:
    """One-sided (1 - alpha) Clopper–Pearson lower bound on a binomial proportion, elementwise."""
    k_np = k.detach().cpu().double().numpy()
    lb = beta_dist.ppf(alpha, k_np, n - k_np + 1)
    lb = torch.from_numpy(lb).nan_to_num(0.0)  # k = 0 gives NaN: the bound is 0
    return lb


def clopper_pearson(k: torch.Tensor, n: int, alpha: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-sided (1 - alpha) Clopper–Pearson interval for ``k`` successes out of ``n``."""
    k_np = k.detach().cpu().double().numpy()
    lo = torch.from_numpy(beta_dist.ppf(alpha / 2, k_np, n - k_np + 1)).nan_to_num(0.0)
    hi = torch.from_numpy(beta_dist.ppf(1 - alpha / 2, k_np + 1, n - k_np)).nan_to_num(1.0)
    return lo, hi


@dataclass
class Certificate:
    """Result of :func:`certify` for a batch: ``prediction`` int64 ``[B]`` (ABSTAIN = -1),
    ``radius`` float ``[B]`` (L2 in the units of ``sigma``, i.e. the noise space; 0 where
    abstained; pixel units via :func:`pixel_radius`), ``p_lower`` float ``[B]``."""

    prediction: torch.Tensor
    radius: torch.Tensor
    p_lower: torch.Tensor


def certify(classifier: Callable, x: torch.Tensor, sigma: float, n0: int, n: int, alpha: float,
            num_classes: int = 10, *, batch_size: int = 256,
            generator: torch.Generator | None = None) -> Certificate:
    """Cohen et al.'s ``CERTIFY``: guess the top class from ``n0`` draws, bound its probability from ``n``.

    With probability at least ``1 - alpha`` a returned class is the smoothed classifier's
    prediction everywhere within the L2 ``radius = sigma * Phi^-1(p_lower)`` of ``x``.
    ``sigma`` is the noise std the radius is computed with: the radius is in the space where the
    noise is isotropic with that std (pixels, or normalized units: :func:`pixel_radius`).
    """
    _check_alpha(alpha)
    sigma = check_sigma(sigma)
    c0 = mc_counts(classifier, x, n0, num_classes, batch_size=batch_size, generator=generator)
    guess = c0.argmax(1)
    c = mc_counts(classifier, x, n, num_classes, batch_size=batch_size, generator=generator)
    k = c.gather(1, guess[:, None]).squeeze(1)
    p_lower = lower_confidence_bound(k, n, alpha).to(x.device)
    certified = p_lower > 0.5
    radius = torch.where(certified, sigma * torch.from_numpy(norm.ppf(p_lower.cpu().numpy())).to(x.device),
                         torch.zeros_like(p_lower))
    prediction = torch.where(certified, guess, torch.full_like(guess, ABSTAIN))
    return Certificate(prediction, radius.float(), p_lower.float())


def _check_alpha(alpha: float) -> None:
    if not (is_real(alpha) and 0 < alpha < 1):
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")


def mc_success(counts: torch.Tensor, y: torch.Tensor, alpha: float = 0.3,
               target: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's Monte-Carlo attack-success rule (eq. 5-6) from vote counts.

    Parameters
    ----------
    counts : int ``[B, C]`` votes over N draws (:func:`mc_counts`)
    y : int ``[B]`` true labels
    alpha : float in (0, 1]
        The abstention threshold, a *fraction* of the N votes (paper: 0.3).
    target : int ``[B]``, optional
        Targets of a targeted attack.

    Returns
    -------
    bool ``[B]``. Untargeted: ``argmax c != y`` or ``max_{j != y} c_j / N >= alpha``.
    Targeted: ``argmax c == t`` or ``c_t / N >= alpha``.
    """
    if not (is_real(alpha) and 0 < alpha <= 1):
        raise ValueError(f"alpha (abstention threshold) must lie in (0, 1], got {alpha!r}")
    if not (isinstance(counts, torch.Tensor) and counts.dim() == 2 and counts.shape[0] >= 1
            and not counts.is_floating_point()):
        raise ValueError(f"counts must be an integer tensor [B, C] of votes with B >= 1 (mc_counts), got "
                         f"{tuple(counts.shape) if isinstance(counts, torch.Tensor) else type(counts).__name__}")
    check_labels(y, counts.shape[0], num_classes=counts.shape[1], device=counts.device, of="the counts")
    n = counts.sum(1).double()
    top = counts.argmax(1)
    # compare the fraction c / N with alpha, as the rule is written (alpha * N can round above c)
    if target is None:
        others = counts.scatter(1, y[:, None], -1)
        return (top != y) | (others.max(1).values / n >= alpha)
    check_labels(target, counts.shape[0], "targets", counts.shape[1], counts.device, of="the labels")
    return (top == target) | (counts.gather(1, target[:, None]).squeeze(1) / n >= alpha)


def votes_needed(alpha: float, n: int) -> int:
    """The fewest votes ``c`` out of ``n`` with ``c / n >= alpha`` (as :func:`mc_success` computes it)."""
    c = max(0, min(n, math.ceil(alpha * n) - 1))
    while c / n < alpha:
        c += 1
    return c
