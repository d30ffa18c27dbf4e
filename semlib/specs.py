"""What a study computes, as data: its settings (:class:`StudyConfig`, the ``STUDY`` block of
``params/<preset>.yaml``) and its curves (:class:`CurveSpec`: defended model or attacker,
attack, goal, SEM variant), plus the seeded targets of targeted curves.

SEM variants: ``sem`` (the admitted collection, K in ``k_range``, paper 1..4), ``sem_k68``
(the same collection, K in ``k_range_large``: paper Sec. 4.5), ``sem_wrn`` (the single-architecture
collection: one architecture at several sigmas) and ``custom:<name>`` (registered with
:meth:`semlib.study.Study.add_variant`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import torch

from .attacks import ATTACKS
from .scenarios import SCENARIOS, Defended, scenario
from .settings import from_dict as settings_from_dict

GOALS = ("untargeted", "targeted")
VARIANTS = ("sem", "sem_k68", "sem_wrn")
BASELINES = ("RSE", "ADP", "SEM")  # Fig. 3 baselines; SEM: white-box on the SEM itself (06b)
QUERY_ATTACKS = ("nes", "spsa")


@dataclass
class StudyConfig:
    """Attack and judgement settings shared by the curves of a notebook (the ``STUDY`` parameter).

    Paper values in brackets; presets shrink them (see ``params/<preset>.yaml``).
    """

    n_images: int = 100  # first test images, fallbacks skipped [paper: not stated; ARES 1000]
    norm: str = "linf"
    steps: int = 20  # BIM / MIM / PGD iterations [20]
    eot: int = 10  # stochastic passes per gradient step on a random model
    query_budget: int = 5000  # NES / SPSA queries per attack run [5000]
    query_samples: int = 25  # antithetic pairs per NES / SPSA gradient estimate
    judge_n: int = 100  # Monte-Carlo votes per judged image [N = 100]
    alpha: float = 0.3  # abstention threshold of the success rule [0.3]
    eps0: float = 1 / 255  # first budget of the exponential search
    search_steps: int = 10  # exponential search rounds [10]
    binary_steps: int = 20  # binary search rounds [20]
    period: int = 5  # attacker B's refresh period in iterations
    half_seed: int = 0  # which half of the collection attackers C and D know
    seed: int = 0  # targets and every curve's randomness
    k_range: list[int] = field(default_factory=lambda: [1, 4])  # the SEM's K_min, K_max [1, 4]
    k_range_large: list[int] = field(default_factory=lambda: [6, 8])  # variant sem_k68 [6, 8]
    single_arch: str = "resnet18"  # contrasts G (smoothed) and I (plain)
    apgd_steps: int = 100  # adaptive attacker (06b) iterations
    apgd_eot: int = 20  # adaptive attacker EOT samples per iteration
    apgd_loss: str = "ce"
    eps_max: float = 0.1  # right end of the plotted eps grid (plots and claims only)
    shard_size: int = 50  # images per cached shard

    # fields that change the plots or the ledger, not a curve
    _presentation = ("n_images", "eps_max")

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "STUDY") -> "StudyConfig":
        cfg = settings_from_dict(cls, raw, source)
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "STUDY") -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"{source}: {what}")

        ints = ("n_images", "steps", "eot", "query_budget", "query_samples", "judge_n", "search_steps", "period",
                "apgd_steps", "apgd_eot", "shard_size")
        for name in ints:
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, f"{name} must be an integer >= 1, got {v!r}")
        need(isinstance(self.binary_steps, int) and self.binary_steps >= 0,
             f"binary_steps must be an integer >= 0, got {self.binary_steps!r}")
        need(self.norm in ("linf", "l2"), f"norm must be 'linf' or 'l2', got {self.norm!r}")
        need(0 < self.alpha < 1, f"alpha (abstention threshold) must lie in (0, 1), got {self.alpha!r}")
        need(self.eps0 > 0, f"eps0 must be > 0, got {self.eps0!r}")
        need(self.eps_max > 0, f"eps_max must be > 0, got {self.eps_max!r}")
        need(self.query_budget >= 2 * self.query_samples,
             f"query_budget ({self.query_budget}) must be >= 2 * query_samples ({self.query_samples})")
        need(self.apgd_loss in ("ce", "dlr"), f"apgd_loss must be 'ce' or 'dlr', got {self.apgd_loss!r}")
        for name in ("k_range", "k_range_large"):
            k = getattr(self, name)
            need(isinstance(k, (list, tuple)) and len(k) == 2 and all(isinstance(v, int) for v in k)
                 and 1 <= k[0] <= k[1], f"{name} must be [K_min, K_max] with 1 <= K_min <= K_max, got {k!r}")

    def curve_fields(self, attack: str | None = None) -> dict[str, Any]:
        """The settings a curve of ``attack`` depends on (its cache key): the other attacks'
        settings and the presentation fields are left out, so notebooks share curves."""
        own = {"apgd": ("apgd_steps", "apgd_eot", "apgd_loss"), "nes": ("query_budget", "query_samples"),
               "spsa": ("query_budget", "query_samples")}
        every = {f for v in own.values() for f in v} | {"steps", "eot"}
        keep = set(own.get(attack, ("steps", "eot"))) if attack else set()
        return {k: v for k, v in asdict(self).items()
                if k not in self._presentation and (k not in every or k in keep)}


@dataclass(frozen=True)
class CurveSpec:
    """One curve: ``defense`` is a scenario letter (A–M), a baseline (``RSE``, ``ADP``) or ``SEM``
    (the adaptive attacker: white-box on the SEM itself, EOT over fresh draws and noise);
    ``attack`` one of bim, mim, pgd, nes, spsa, apgd; ``goal`` untargeted or targeted; ``variant``
    which SEM the A–E attackers face."""

    defense: str
    attack: str
    goal: str = "untargeted"
    variant: str = "sem"

    def __post_init__(self) -> None:
        if self.defense not in BASELINES:
            scenario(self.defense)  # unknown names fail here
        if self.attack not in ATTACKS:
            raise ValueError(f"unknown attack {self.attack!r}; known: {', '.join(ATTACKS)}")
        if self.goal not in GOALS:
            raise ValueError(f"goal must be one of {GOALS}, got {self.goal!r}")
        if self.variant not in VARIANTS and not self.variant.startswith("custom:"):
            raise ValueError(f"variant must be one of {VARIANTS} or 'custom:<name>', got {self.variant!r}")
        query_scenario = self.defense not in BASELINES and SCENARIOS[self.defense].query
        if query_scenario != (self.attack in QUERY_ATTACKS):
            kind = "a score-based attack (nes, spsa)" if query_scenario else "a gradient attack"
            raise ValueError(f"{self.defense} is attacked with {kind}, not {self.attack!r}")

    @property
    def label(self) -> str:
        suffix = {"sem": "", "sem_k68": " (K 6..8)", "sem_wrn": " (WRN SEM)"}.get(self.variant, f" ({self.variant[7:]})")
        sem_facing = self.defense in BASELINES or SCENARIOS[self.defense].defended is Defended.SEM
        return self.defense + (suffix if sem_facing or self.variant == "sem" else "")


def specs(defenses: Iterable[str], attacks: Iterable[str], goals: Iterable[str] = GOALS, variant: str = "sem"
          ) -> list[CurveSpec]:
    """Every combination, as a figure needs them."""
    return [CurveSpec(d, a, g, variant) for g in goals for a in attacks for d in defenses]


def random_targets(y: torch.Tensor, ids: torch.Tensor, seed: int) -> torch.Tensor:
    """A seeded random class != y per example, fixed by the example's test index (so a subset
    of images keeps the targets it has in a larger run)."""
    g = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, 10, (10_000,), generator=g)
    return (y + shift[ids]) % 10
