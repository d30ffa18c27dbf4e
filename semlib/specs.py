"""What a study computes, as data: its settings (:class:`StudyConfig`, the ``STUDY`` block of
``params/<preset>.yaml``), the SEMs the attackers face (:class:`Variant`, registry
:data:`VARIANTS`) and its curves (:class:`CurveSpec`: scenario, attack, goal, SEM variant),
plus the seeded targets of targeted curves.

SEM variants: ``sem`` (the admitted collection, K in ``k_range``, paper 1..4), ``sem_k68``
(the same collection, K in ``k_range_large``: paper Sec. 4.5), ``sem_wrn`` (the single-architecture
collection: one architecture at several sigmas) and ``custom:<name>`` (any listed sub-models and
K, registered with :meth:`semlib.study.Study.add_variant`). A curve's label is derived from its
variant's settings (:func:`label`), never parsed back: tables and claims select curves by
their ``scenario`` and ``variant`` columns.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import torch

from .attacks import APGD, ATTACKS, Attack, make_attack
from .curves import SearchConfig
from .judge import JudgeConfig
from .scenarios import SCENARIOS, Defended, scenario
from .settings import from_dict as settings_from_dict

GOALS = ("untargeted", "targeted")
FIG3_BASELINES = ("RSE", "ADP")  # the Fig. 3 defenses besides ensemble smoothing (semlib.baselines)
ADAPTIVE = "SEM"  # the adaptive attacker's curve (06b): white-box on the SEM itself, EOT over draws and noise
EXTRA_SCENARIOS = (*FIG3_BASELINES, ADAPTIVE)  # curve scenarios beyond Table 2's letters A–M
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
    period: int = 5  # attacker B's refresh period in iterations (below steps: B redraws within a run)
    pool: int = 4  # attacker B's own realizations per image, used in turn
    half_seed: int = 0  # which half of the collection attackers C and D know
    seed: int = 0  # targets and every curve's randomness
    k_range: list[int] = field(default_factory=lambda: [1, 4])  # the SEM's K_min, K_max [1, 4]
    k_range_large: list[int] = field(default_factory=lambda: [6, 8])  # variant sem_k68 [6, 8]
    contrast_arch: str = "resnet18"  # the single model of contrasts G (smoothed) and I (plain)
    apgd_steps: int = 100  # adaptive attacker (06b) iterations
    apgd_eot: int = 20  # adaptive attacker EOT samples per iteration
    apgd_loss: str = "ce"
    eps_max: float = 0.1  # right end of the plotted eps grid (plots and claims only)
    shard_size: int = 50  # images per cached shard
    channels_last: bool = True  # attack and judge channels_last, strided 1x1 convs guarded (x1.09-1.19, AVX2)
    together: bool = True  # a block's curves run together, network calls batched (semlib.batching)
    block: int = 100  # images stepped as one batch (curves, robust table): a block of consecutive shards, a task each

    # fields that change the plots or the ledger, not a curve; and how it is computed, not what
    # (in the cache key through Study.key_config, never in the seeds)
    _presentation = ("n_images", "eps_max")
    _computation = ("channels_last", "shard_size", "together")  # draws are per image and request (semlib.streams)
    _speed = ("block",)  # in no key or seed: rows equal up to rounding (semlib.shards, certification.per_model)
    # names in cache keys and seeds, where a field was renamed since curves were first keyed
    _key_names = {"contrast_arch": "single_arch"}

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None, source: str = "STUDY") -> "StudyConfig":
        cfg = settings_from_dict(cls, raw, source)
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "STUDY") -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"{source}: {what}")

        ints = ("n_images", "steps", "eot", "query_budget", "query_samples", "judge_n", "search_steps", "period", "pool",
                "apgd_steps", "apgd_eot", "shard_size", "block")
        for name in ints:
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1, f"{name} must be an integer >= 1, got {v!r}")
        need(isinstance(self.binary_steps, int) and self.binary_steps >= 0,
             f"binary_steps must be an integer >= 0, got {self.binary_steps!r}")
        need(self.steps == 1 or self.period < self.steps,
             f"period ({self.period}) must be below steps ({self.steps}): attacker B refreshes its draws within a run")
        for flag in ("channels_last", "together"):
            need(isinstance(getattr(self, flag), bool), f"{flag} must be true or false, got {getattr(self, flag)!r}")
        need(self.norm in ("linf", "l2"), f"norm must be 'linf' or 'l2', got {self.norm!r}")
        need(0 < self.alpha < 1, f"alpha (abstention threshold) must lie in (0, 1), got {self.alpha!r}")
        need(self.eps0 > 0, f"eps0 must be > 0, got {self.eps0!r}")
        need(self.eps_max > 0, f"eps_max must be > 0, got {self.eps_max!r}")
        need(self.query_budget >= 2 * self.query_samples,
             f"query_budget ({self.query_budget}) must be >= 2 * query_samples ({self.query_samples})")
        need(self.apgd_loss in ("ce", "dlr", "vote"), f"apgd_loss must be 'ce', 'dlr' or 'vote', got {self.apgd_loss!r}")
        for name in ("k_range", "k_range_large"):
            k = getattr(self, name)
            need(isinstance(k, (list, tuple)) and len(k) == 2 and all(isinstance(v, int) for v in k)
                 and 1 <= k[0] <= k[1], f"{name} must be [K_min, K_max] with 1 <= K_min <= K_max, got {k!r}")

    @property
    def ceiling(self) -> float:
        """The largest budget the eps search tries (``eps0 * 2 ** (search_steps - 1)``): an image
        not broken by then is reported as NaN, right-censored there."""
        return self.eps0 * 2 ** (self.search_steps - 1)

    def attack(self, name: str, deterministic: bool = False) -> Attack:
        """The attack ``name`` with this study's budget (one EOT sample on a ``deterministic`` model)."""
        if name in QUERY_ATTACKS:
            return make_attack(name, norm=self.norm, max_queries=self.query_budget, samples=self.query_samples)
        if name == "apgd":
            return APGD(norm=self.norm, steps=self.apgd_steps, eot=1 if deterministic else self.apgd_eot,
                        loss=self.apgd_loss, channels_last=self.channels_last)
        return make_attack(name, norm=self.norm, steps=1 if name == "fgsm" else self.steps,  # FGSM: one step
                           eot=1 if deterministic else self.eot, channels_last=self.channels_last)

    def search(self) -> SearchConfig:
        """The eps search of this study's curves."""
        return SearchConfig(eps0=self.eps0, search_steps=self.search_steps, binary_steps=self.binary_steps)

    def judge(self, deterministic: bool = False) -> JudgeConfig:
        """The Monte-Carlo judgement of this study (one vote for a ``deterministic`` model)."""
        return JudgeConfig(n=1 if deterministic else self.judge_n, alpha=self.alpha)

    def curve_fields(self, attack: str | None = None) -> dict[str, Any]:
        """The settings a curve of ``attack`` depends on (its cache key): the other attacks'
        settings and the presentation fields are left out, so notebooks share curves."""
        own = {"apgd": ("apgd_steps", "apgd_eot", "apgd_loss"), "nes": ("query_budget", "query_samples"),
               "spsa": ("query_budget", "query_samples")}
        every = {f for v in own.values() for f in v} | {"steps", "eot"}
        keep = set(own.get(attack, ("steps", "eot"))) if attack else set()
        return {self._key_names.get(k, k): v for k, v in asdict(self).items()
                if k not in self._presentation + self._computation + self._speed and (k not in every or k in keep)}


CUSTOM = "custom:"  # the prefix of a variant registered by Study.add_variant


@dataclass(frozen=True)
class Variant:
    """A SEM that the attackers A–E and the adaptive attacker face.

    ``collection``: ``"sigmas"`` (the zoo's sub-models at its sigmas, admitted by THRESHOLD),
    ``"single_arch"`` (the zoo's single-architecture collection: one family, so a draw takes K
    distinct sub-models) or ``"members"`` (the sub-models in ``members``). K comes from the
    StudyConfig field ``k_field``, or from ``k`` for a variant with listed members. ``title``
    names the collection in curve labels."""

    name: str
    collection: str = "sigmas"
    k_field: str = "k_range"
    title: str = ""
    members: tuple[str, ...] = ()
    k: tuple[int, int] | None = None

    def k_range(self, cfg: StudyConfig) -> tuple[int, int]:
        k = self.k if self.k is not None else getattr(cfg, self.k_field)
        return int(k[0]), int(k[1])

    def suffix(self, cfg: StudyConfig) -> str:
        """What this SEM adds to a curve label: its collection's title, and its K range where
        that is not the study's ``k_range``."""
        parts = [self.title] if self.title else []
        if self.k is None and self.k_range(cfg) != tuple(cfg.k_range):
            parts.append("K {}..{}".format(*self.k_range(cfg)))
        return f" ({', '.join(parts)})" if parts else ""

    def seed_entry(self) -> tuple[list[str], tuple[int, int]] | None:
        """What a variant with listed members adds to its curves' seeds and keys (None otherwise)."""
        return (list(self.members), self.k) if self.collection == "members" else None


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("sem"),
    Variant("sem_k68", k_field="k_range_large"),
    Variant("sem_wrn", collection="single_arch", title="WRN SEM"),
)}


def custom_variant(name: str, members: Iterable[str], k_range: tuple[int, int]) -> Variant:
    """The variant ``custom:<name>``: a SEM on the sub-models ``members`` with K in ``k_range``."""
    k = (int(k_range[0]), int(k_range[1]))
    if not 1 <= k[0] <= k[1]:
        raise ValueError(f"K range must satisfy 1 <= K_min <= K_max, got {k_range}")
    return Variant(f"{CUSTOM}{name}", collection="members", title=name, members=tuple(sorted(members)), k=k)


@dataclass(frozen=True)
class CurveSpec:
    """One curve: ``scenario`` is a scenario letter of Table 2 (attackers A–E, contrasts F–M), a
    baseline (``RSE``, ``ADP``) or ``SEM`` (the adaptive attacker: white-box on the SEM itself,
    EOT over fresh draws and noise); ``attack`` one of bim, mim, pgd, nes, spsa, apgd; ``goal``
    untargeted or targeted; ``variant`` which SEM the SEM-facing scenarios face."""

    scenario: str
    attack: str
    goal: str = "untargeted"
    variant: str = "sem"

    def __post_init__(self) -> None:
        if self.scenario not in EXTRA_SCENARIOS:
            scenario(self.scenario)  # unknown names fail here
        if self.attack not in ATTACKS:
            raise ValueError(f"unknown attack {self.attack!r}; known: {', '.join(ATTACKS)}")
        if self.goal not in GOALS:
            raise ValueError(f"goal must be one of {GOALS}, got {self.goal!r}")
        if self.variant not in VARIANTS and not self.variant.startswith(CUSTOM):
            raise ValueError(f"variant must be one of {tuple(VARIANTS)} or '{CUSTOM}<name>', got {self.variant!r}")
        query_scenario = self.scenario not in EXTRA_SCENARIOS and SCENARIOS[self.scenario].query
        if query_scenario != (self.attack in QUERY_ATTACKS):
            kind = "a score-based attack (nes, spsa)" if query_scenario else "a gradient attack"
            raise ValueError(f"{self.scenario} is attacked with {kind}, not {self.attack!r}")

    @property
    def sem_facing(self) -> bool:
        """Whether the curve's defended model is a SEM (so its variant matters)."""
        return self.scenario == ADAPTIVE or (self.scenario in SCENARIOS
                                             and SCENARIOS[self.scenario].defended is Defended.SEM)

    def judged_by(self) -> dict[str, str | None]:
        """The defended model whose votes judge the curve: the SEM of its variant, a contrast
        (by its kind, e.g. ``ensemble_smoothed`` for F and J) or a baseline."""
        if self.sem_facing:
            return {"clean": "sem", "variant": self.variant}
        kind = self.scenario if self.scenario in EXTRA_SCENARIOS else SCENARIOS[self.scenario].defended.value
        return {"clean": kind, "variant": None}

    def key(self) -> dict[str, str]:
        """The curve in cache keys and seeds (``defense``: the scenario's name when curves were
        first keyed; renaming it would re-seed every curve)."""
        return {"defense": self.scenario, "attack": self.attack, "goal": self.goal, "variant": self.variant}

    @classmethod
    def from_key(cls, key: dict[str, str]) -> "CurveSpec":
        return cls(key["defense"], key["attack"], key["goal"], key["variant"])

    @property
    def label(self) -> str:
        """The display label under the default settings (:meth:`semlib.study.Study.label`: under
        the study's)."""
        return label(self, StudyConfig())


def label(spec: CurveSpec, cfg: StudyConfig, variant: Variant | None = None) -> str:
    """A curve's display label: the scenario, plus its SEM's suffix (:meth:`Variant.suffix`)
    for SEM-facing curves of another variant than ``sem``."""
    if not spec.sem_facing or spec.variant == "sem":
        return spec.scenario
    v = variant or VARIANTS.get(spec.variant)
    return spec.scenario + (v.suffix(cfg) if v else f" ({spec.variant[len(CUSTOM):]})")  # unregistered: its name


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
