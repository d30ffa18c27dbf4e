"""One engine for the gradient attacks: FGSM, BIM, MIM and PGD are configurations of
:class:`GradientAttack` (Linf or L2, untargeted or targeted, per-example eps).

Each step ascends the cross-entropy of the true class (untargeted) or descends that of the
target (targeted), averaged over ``eot`` stochastic forward passes (expectation over
transformation: fresh smoothing noise and, for the SEM, fresh draws), then projects onto the
eps-ball intersected with [0, 1]. Step size ``step_ratio * eps / steps`` (ARES: 1.5 eps / 20).

EOT samples are evaluated in passes of at most ``chunk`` images: copies of several images
and of several samples are packed into one pass (on a CPU, 128-256 images per pass beat one
giant batch; on a GPU use a large chunk).

A model may take part in the attack through two optional hooks: ``on_attack_start(n,
generator)`` and ``on_attack_step(step, generator)`` (attackers A and B redraw the realized
ensemble there), and ``forward_indexed(x, index, generator)`` to learn which of the attacked
images each row of a pass is a copy of.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..smoothing import call_classifier
from ..streams import bind
from ..layout import autocast
from ..settings import check_real, is_int
from .base import Attack, Norm, as_norm, direction, project, random_start


def forward(model, x: torch.Tensor, index: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Logits of one pass; ``index`` says which attacked image each row copies."""
    if hasattr(model, "forward_indexed"):
        return model.forward_indexed(x, index, generator)
    return call_classifier(model, x, generator)


def default_chunk(device: torch.device) -> int:
    """Images per forward pass by device (measured on the 2-core CPU: 1.5x slower at 1024)."""
    return 256 if device.type == "cpu" else 8192


def attack_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, kind: str = "ce") -> torch.Tensor:
    """Per-example loss to *ascend*, ``[B]``.

    ``ce``: CE(y) untargeted, -CE(target) targeted. ``dlr``: the difference of logits ratio of
    Croce & Hein (2020), ``-(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3)`` untargeted and
    ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` targeted (z sorted decreasingly: pi).
    ``vote``: the soft vote of the class ``target`` names minus that of the true class,
    ``softmax(z)_t - softmax(z)_y`` — aligned with the Monte-Carlo rule (success when a wrong
    class gets an alpha fraction of the votes) and linear in the softmax, so its EOT mean is
    the margin of the mean soft vote; an untargeted attack names the best wrong class
    (:class:`semlib.attacks.apgd.APGD` picks it from the mean soft vote of the previous step).
    """
    z = logits.float()
    if kind == "vote":
        if target is None:
            raise ValueError("the vote loss needs the class whose vote to raise (target)")
        p = z.softmax(1)
        return p.gather(1, target[:, None]).squeeze(1) - p.gather(1, y[:, None]).squeeze(1)
    if kind == "ce":
        return F.cross_entropy(z, y, reduction="none") if target is None else -F.cross_entropy(z, target, reduction="none")
    if kind != "dlr":
        raise ValueError(f"unknown attack loss {kind!r}; choose 'ce', 'dlr' or 'vote'")
    if z.shape[1] < (3 if target is None else 4):
        raise ValueError(f"the DLR loss needs at least {3 if target is None else 4} classes, got {z.shape[1]}")
    zs = z.sort(1, descending=True).values
    z_y = z.gather(1, y[:, None]).squeeze(1)
    if target is None:
        other = z.scatter(1, y[:, None], float("-inf")).amax(1)
        return -(z_y - other) / (zs[:, 0] - zs[:, 2] + 1e-12)
    z_t = z.gather(1, target[:, None]).squeeze(1)
    return -(z_y - z_t) / (zs[:, 0] - (zs[:, 2] + zs[:, 3]) / 2 + 1e-12)


def eot_gradient(model, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None, *, eot: int = 1,
                 chunk: int = 256, generator: torch.Generator | None = None, bf16: bool = False,
                 channels_last: bool = False, loss: str = "ce", return_loss: bool = False,
                 ids: torch.Tensor | None = None, return_votes: bool = False):
    """Mean over ``eot`` stochastic passes of the input gradient of :func:`attack_loss`. ``[B, 3, H, W]``
    (with ``return_loss``: also the mean loss ``[B]``; with ``return_votes``: also the mean soft
    vote ``softmax(logits)`` ``[B, C]``).

    ``channels_last`` feeds the passes in channels_last memory format (pays on CPUs when the
    model's weights are channels_last too: ``model.to(memory_format=torch.channels_last)``).
    ``ids``: which attacked image each row of ``x`` is (default its position), for models that
    hold per-image draws when an attack works on a subset of its images."""
    b = len(x)
    chunk *= min(getattr(model, "fanout", 1), 4)  # a SEM spreads a pass over its sub-models (memory: <= 4x)
    owners = torch.arange(b, device=x.device).repeat(eot)  # sample-major: every image once per sample
    grad = torch.zeros_like(x)
    total = torch.zeros(b, dtype=torch.float32, device=x.device)
    votes = None
    for s in range(0, b * eot, chunk):
        idx = owners[s:s + chunk]
        xin = x[idx].detach()
        if channels_last:
            xin = xin.contiguous(memory_format=torch.channels_last)
        xin.requires_grad_(True)
        rows = idx if ids is None else ids[idx]  # which attacked image each row copies
        with autocast(bf16, x.device):
            logits = forward(model, xin, rows, bind(generator, len(idx), rows))
        value = attack_loss(logits, y[idx], None if target is None else target[idx], loss)
        (g,) = torch.autograd.grad(value.sum(), xin)
        grad.index_add_(0, idx, g.to(grad.dtype).contiguous())
        total.index_add_(0, idx, value.detach())
        if return_votes:
            if votes is None:
                votes = torch.zeros(b, logits.shape[1], dtype=torch.float32, device=x.device)
            votes.index_add_(0, idx, logits.detach().float().softmax(1))
    out = (grad / eot,) + ((total / eot,) if return_loss else ()) + ((votes / eot,) if return_votes else ())
    return out if len(out) > 1 else out[0]


@dataclass
class GradientAttack(Attack):
    """Iterative gradient attack. Defaults: BIM, Linf, 20 steps of 1.5 * eps / 20.

    Parameters
    ----------
    norm : "linf" or "l2"
    steps : iterations
    step_ratio : step size = step_ratio * eps / steps
    decay : momentum decay (MIM: 1.0; 0 = no momentum)
    random_start : start from a random point of the eps-ball (PGD)
    eot : stochastic passes averaged per step (1 for deterministic models)
    chunk : images per forward pass; None picks per device (CPU 256: several passes of 128-256
        images beat one giant batch there; GPU 8192: one big batch)
    bf16 : bf16 autocast for the passes (faster on CPUs with bf16; reported results use fp32)
    channels_last : feed the passes as channels_last (with a channels_last model)
    """

    norm: Norm | str = Norm.LINF
    steps: int = 20
    step_ratio: float = 1.5
    decay: float = 0.0
    random_start: bool = False
    eot: int = 1
    chunk: int | None = None
    bf16: bool = False
    channels_last: bool = False

    def __post_init__(self) -> None:
        self.norm = as_norm(self.norm)
        if not all(is_int(v) and v >= 1
                   for v in (self.steps, self.eot, 1 if self.chunk is None else self.chunk)):
            raise ValueError(f"steps, eot and chunk must be >= 1, got {self.steps!r}, {self.eot!r}, {self.chunk!r}")
        check_real("step_ratio", self.step_ratio, open_lo=True)
        check_real("decay", self.decay)

    def run(self, model, x, y, eps, target, generator):
        alpha = (self.step_ratio * eps / self.steps).view(-1, 1, 1, 1)
        x_adv = random_start(x, eps, self.norm, generator) if self.random_start else x.clone()
        momentum = torch.zeros_like(x)
        self.begin(model, len(x), generator)
        for k in range(self.steps):
            self.step(model, k, generator)
            g = eot_gradient(model, x_adv, y, target, eot=self.eot, chunk=self.chunk or default_chunk(x.device),
                             generator=generator,
                             bf16=self.bf16, channels_last=self.channels_last)
            if self.decay:
                g = g / g.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
                momentum = self.decay * momentum + g
                g = momentum
            x_adv = project(x_adv + alpha * direction(g, self.norm), x, eps, self.norm).detach()
        return x_adv, self.spent(len(x), self.steps * self.eot), self.spent(len(x), 0)


@dataclass
class FGSM(GradientAttack):
    """One step of size eps (Goodfellow et al. 2015)."""

    steps: int = 1
    step_ratio: float = 1.0


@dataclass
class BIM(GradientAttack):
    """Basic iterative method (Kurakin et al. 2017)."""


@dataclass
class MIM(GradientAttack):
    """Momentum iterative method (Dong et al. 2018), decay 1.0."""

    decay: float = 1.0


@dataclass
class PGD(GradientAttack):
    """Projected gradient descent with a random start (Madry et al. 2018)."""

    random_start: bool = True
