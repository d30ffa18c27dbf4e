"""What every attack shares: the :class:`Attack` base (input checks, the model's hooks, the
per-example bookkeeping), norms, and projection onto the eps-ball. Pixels are in [0, 1];
``eps`` is a per-example tensor ``[B]``."""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from enum import Enum

import torch

from .. import streams
from ..inputs import check_images, check_labels


class Norm(str, Enum):
    LINF = "linf"
    L2 = "l2"


def as_norm(value: str | Norm) -> Norm:
    try:
        return Norm(value)
    except ValueError:
        raise ValueError(f"unknown norm {value!r}; choose one of {[n.value for n in Norm]}") from None


@dataclass
class AttackResult:
    """``x_adv`` float ``[B, 3, H, W]``; ``gradients`` / ``queries`` int64 ``[B]``: forward-backward
    passes / forward queries spent per example."""

    x_adv: torch.Tensor
    gradients: torch.Tensor
    queries: torch.Tensor


def check_inputs(x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor | float,
                 target: torch.Tensor | None) -> torch.Tensor:
    """Validate an attack call; returns ``eps`` as a float tensor ``[B]`` on ``x``'s device.

    ``x``: non-empty float32 ``[B, 3, H, W]``, finite, in [0, 1]; ``y`` and ``target``: int64
    ``[B]`` CIFAR-10 classes on ``x``'s device; ``eps``: a finite number >= 0 or a tensor ``[B]``.
    """
    check_images(x)
    check_labels(y, len(x), "labels", device=x.device)
    if target is not None:
        check_labels(target, len(x), "targets", device=x.device, of="the labels")
    if isinstance(eps, bool) or not isinstance(eps, (numbers.Real, torch.Tensor)):
        raise ValueError(f"eps must be a number or a tensor of shape [{len(x)}], got {type(eps).__name__}")
    eps_t = torch.as_tensor(eps, dtype=x.dtype, device=x.device)
    if eps_t.dim() == 0:
        eps_t = eps_t.expand(len(x))
    if eps_t.shape != (len(x),):
        raise ValueError(f"eps must be a number or a tensor of shape [{len(x)}], got {tuple(eps_t.shape)}")
    if bool((eps_t < 0).any()) or not bool(torch.isfinite(eps_t).all()):
        raise ValueError(f"eps must be finite and >= 0, got min {float(eps_t.min()):.4g}, max {float(eps_t.max()):.4g}")
    return eps_t.clone()


class Attack:
    """The base of every attack (torchattacks' pattern: the base owns the checks and the
    accounting, each attack overrides one method).

    ``attack(model, x, y, eps, target=None, generator=None)`` validates the call
    (:func:`check_inputs`), detaches ``x`` and returns an :class:`AttackResult`; a subclass
    implements :meth:`run`, returning ``(x_adv, gradients, queries)`` with the passes it spent
    per example. Models that hold their random draws during an attack (attackers A and B,
    :class:`semlib.ensemble.HeldDraws`) expose ``on_attack_start`` / ``on_attack_step``;
    gradient attacks call them through :meth:`begin` and :meth:`step`.
    """

    norm: Norm

    @property
    def name(self) -> str:
        return type(self).__name__.lower()

    checks_success = False  # whether run() takes ``success`` (judges its iterates, keeps the first success)

    def __call__(self, model, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor | float,
                 target: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 success=None) -> AttackResult:
        """Attack images ``x`` ``[B, 3, H, W]`` (pixels in [0, 1]) with labels ``y`` ``[B]`` at
        per-example budgets ``eps`` ``[B]``; targeted when ``target`` ``[B]`` is given.
        ``success(x_adv, ids) -> bool [n]``: judge iterates on the way (attacks with ``checks_success``)."""
        eps = check_inputs(x, y, eps, target)
        if success is None:
            x_adv, gradients, queries = self.run(model, x.detach(), y, eps, target, generator)
        elif not self.checks_success:
            raise ValueError(f"{self.name} does not judge its iterates; pass success only to APGD")
        else:
            x_adv, gradients, queries = self.run(model, x.detach(), y, eps, target, generator, success=success)
        return AttackResult(x_adv, gradients, queries)

    def run(self, model, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor, target: torch.Tensor | None,
            generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @staticmethod
    def begin(model, batch: int, generator: torch.Generator | None) -> None:
        """Tell a model that holds draws that an attack on ``batch`` images starts."""
        if hasattr(model, "on_attack_start"):
            model.on_attack_start(batch, generator)

    @staticmethod
    def step(model, k: int, generator: torch.Generator | None) -> None:
        """Tell a model that holds draws that iteration ``k`` starts."""
        if hasattr(model, "on_attack_step"):
            model.on_attack_step(k, generator)

    @staticmethod
    def spent(batch: int, passes: int) -> torch.Tensor:
        """``passes`` for each of ``batch`` examples, as the int64 bookkeeping tensor."""
        return torch.full((batch,), passes, dtype=torch.long)


def per_example_norm(v: torch.Tensor, norm: Norm) -> torch.Tensor:
    flat = v.flatten(1)
    return flat.abs().amax(1) if norm is Norm.LINF else flat.norm(dim=1)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Project ``x_adv`` onto ``{||x_adv - x|| <= eps} ∩ [0, 1]`` (per example)."""
    e = eps.view(-1, 1, 1, 1)
    if norm is Norm.LINF:
        # clamp the pixels themselves (no x + (x_adv - x) round trip, which rounds in float)
        return torch.minimum(torch.maximum(x_adv, (x - e).clamp_min(0.0)), (x + e).clamp_max(1.0))
    delta = x_adv - x
    n = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    delta = delta * torch.clamp(e / n.clamp_min(1e-12), max=1.0)
    return (x + delta).clamp(0.0, 1.0)


def direction(g: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Steepest-ascent direction of unit norm: sign (Linf) or g / ||g||_2 (L2)."""
    if norm is Norm.LINF:
        return g.sign()
    return g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)


def random_start(x: torch.Tensor, eps: torch.Tensor, norm: Norm, generator: torch.Generator | None) -> torch.Tensor:
    """A uniform point of the Linf ball, or a random direction at a uniform radius for L2."""
    e = eps.view(-1, 1, 1, 1)
    if norm is Norm.LINF:
        u = streams.rand(x.shape, generator, device=x.device, dtype=x.dtype)
        return (x + (2 * u - 1) * e).clamp(0, 1)
    d = streams.randn(x.shape, generator, device=x.device, dtype=x.dtype)
    d = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    r = streams.rand((len(x),), generator, device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
    return (x + d * r * e).clamp(0, 1)
