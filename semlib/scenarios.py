"""The paper's attackers A–E and contrast methods F–M (Table 2) as declarative specs.

A spec says which model is defended, what the attacker differentiates or queries, and how much
of the collection it knows; :func:`build` turns a spec plus the trained models into the pair
(model the attacker works on, model whose Monte-Carlo votes judge success), so a figure is a
list of spec names, not code.

====  =================  ==========================================================  ========
name  defended model      the attacker works on                                        attack
====  =================  ==========================================================  ========
A     SEM                 each realized ensemble as it is drawn (redrawn every step)   gradient
B     SEM                 a pool of its own draws, used in turn, refreshed every P     gradient
C     SEM                 a substitute SEM on a seeded random half of the collection   gradient
D     SEM                 the plain ensemble (no noise) of that half                   gradient
E     SEM                 the SEM's probability vector (every query a fresh draw)      query
F/J   ensemble-smoothed   the defended model (EOT over noise) / its probabilities      grad/query
G/K   single smoothed     the defended model (EOT over noise) / its probabilities      grad/query
H/L   ensemble            the defended model / its probabilities                       grad/query
I/M   single model        the defended model / its probabilities                       grad/query
====  =================  ==========================================================  ========

C and D craft on the substitute and are judged on the real SEM (transfer).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import torch
from torch import nn

from .ensemble import Ensemble, HeldDraws, StochasticEnsemble
from .smoothing import NoisyClassifier


class Defended(str, Enum):
    SEM = "sem"
    ENSEMBLE_SMOOTHED = "ensemble_smoothed"
    SINGLE_SMOOTHED = "single_smoothed"
    ENSEMBLE = "ensemble"
    SINGLE = "single"


class View(str, Enum):
    LIVE_DRAWS = "live_draws"  # A
    OWN_DRAWS = "own_draws"  # B
    SUBSTITUTE_SEM = "substitute_sem"  # C
    SUBSTITUTE_ENSEMBLE = "substitute_ensemble"  # D
    DEFENDED = "defended"  # E-M: the defended model itself (white-box, or queried)


@dataclass(frozen=True)
class Scenario:
    name: str
    defended: Defended
    view: View
    query: bool  # a score-based (NES / SPSA) attacker rather than a gradient one
    description: str

    @property
    def transfer(self) -> bool:
        return self.view in (View.SUBSTITUTE_SEM, View.SUBSTITUTE_ENSEMBLE)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("A", Defended.SEM, View.LIVE_DRAWS, False, "knows the collection, sees each realized ensemble"),
    Scenario("B", Defended.SEM, View.OWN_DRAWS, False, "knows the collection, draws its own realizations"),
    Scenario("C", Defended.SEM, View.SUBSTITUTE_SEM, False, "knows half the collection, attacks a substitute SEM"),
    Scenario("D", Defended.SEM, View.SUBSTITUTE_ENSEMBLE, False, "knows half the collection, attacks its plain ensemble"),
    Scenario("E", Defended.SEM, View.DEFENDED, True, "knows nothing, queries the SEM"),
    Scenario("F", Defended.ENSEMBLE_SMOOTHED, View.DEFENDED, False, "white-box on the ensemble-smoothed model"),
    Scenario("G", Defended.SINGLE_SMOOTHED, View.DEFENDED, False, "white-box on a single smoothed model"),
    Scenario("H", Defended.ENSEMBLE, View.DEFENDED, False, "white-box on the plain ensemble"),
    Scenario("I", Defended.SINGLE, View.DEFENDED, False, "white-box on a single model"),
    Scenario("J", Defended.ENSEMBLE_SMOOTHED, View.DEFENDED, True, "queries the ensemble-smoothed model"),
    Scenario("K", Defended.SINGLE_SMOOTHED, View.DEFENDED, True, "queries a single smoothed model"),
    Scenario("L", Defended.ENSEMBLE, View.DEFENDED, True, "queries the plain ensemble"),
    Scenario("M", Defended.SINGLE, View.DEFENDED, True, "queries a single model"),
)}


def scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name.upper()]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None


@dataclass
class Defenses:
    """The defended models of one study, built from trained sub-models.

    Parameters
    ----------
    collection : name -> NoisyClassifier, the admitted SEM collection
    families : name -> family
    ensemble_members : names of the fixed-ensemble members at their smoothed sigma (contrast F), e.g.
        DenseNet100-, ResNet- and WRN-style models at sigma 0.25
    ensemble_members_plain : the same architectures unsmoothed (contrast H)
    single_smoothed, single_plain : the single-model contrasts G and I
    k_range : the SEM's (K_min, K_max)
    """

    collection: dict[str, NoisyClassifier]
    families: dict[str, str]
    ensemble_members: dict[str, NoisyClassifier]
    ensemble_members_plain: dict[str, NoisyClassifier]
    single_smoothed: NoisyClassifier
    single_plain: NoisyClassifier
    k_range: tuple[int, int] = (1, 4)
    models: dict[Defended, nn.Module] = field(init=False)

    def __post_init__(self) -> None:
        self.models = {
            Defended.SEM: StochasticEnsemble(self.collection, self.families, self.k_range),
            Defended.ENSEMBLE_SMOOTHED: Ensemble(list(self.ensemble_members.values()), names=list(self.ensemble_members)),
            Defended.SINGLE_SMOOTHED: self.single_smoothed,
            Defended.ENSEMBLE: Ensemble(list(self.ensemble_members_plain.values()), names=list(self.ensemble_members_plain)),
            Defended.SINGLE: self.single_plain,
        }

    def deterministic(self, which: Defended) -> bool:
        """Whether ``which`` has no randomness (judged with N = 1, attacked without EOT)."""
        return which in (Defended.ENSEMBLE, Defended.SINGLE)


def known_half(names: list[str], seed: int) -> list[str]:
    """The seeded random half of the collection that attackers C and D know (ceil(M / 2) names)."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(names), generator=g).tolist()
    return sorted(names[i] for i in order[: math.ceil(len(names) / 2)])


def build(spec: Scenario | str, defenses: Defenses, *, period: int = 5, pool: int = 4, half_seed: int = 0
          ) -> tuple[nn.Module, nn.Module]:
    """(the model the attacker works on, the defended model that judges success) for ``spec``.

    ``period``, ``pool``: attacker B holds ``pool`` realizations of its own per image, used in
    turn, and redraws them every ``period`` attack steps; ``half_seed``: which half of the
    collection C and D know.
    """
    spec = scenario(spec) if isinstance(spec, str) else spec
    judge = defenses.models[spec.defended]
    if spec.view is View.DEFENDED:
        return judge, judge
    sem: StochasticEnsemble = defenses.models[Defended.SEM]
    if spec.view is View.LIVE_DRAWS:
        return HeldDraws(sem, period=1), judge
    if spec.view is View.OWN_DRAWS:
        own = StochasticEnsemble(defenses.collection, defenses.families, defenses.k_range)
        return HeldDraws(own, period=period, pool=pool), judge
    half = known_half(list(defenses.collection), half_seed)
    if spec.view is View.SUBSTITUTE_SEM:
        k_min, k_max = defenses.k_range
        k_range = (min(k_min, len(half)), min(k_max, len(half)))
        return StochasticEnsemble({n: defenses.collection[n] for n in half}, defenses.families, k_range), judge
    # D: the known models' plain ensemble: the same weights, no noise
    plain = [NoisyClassifier(defenses.collection[n].base, 0.0) for n in half]
    return Ensemble(plain, names=half), judge
