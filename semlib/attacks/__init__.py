"""Attacks on stochastic classifiers: one gradient engine (FGSM, BIM, MIM, PGD; EOT) and the
score-based NES and SPSA; APGD for the adaptive attacker. Every attack is called as ``attack(model, x, y, eps, target=None,
generator=None) -> AttackResult`` with a per-example ``eps`` ``[B]``."""
from .apgd import APGD
from .base import Attack, AttackResult, Norm
from .gradient import BIM, FGSM, MIM, PGD, GradientAttack, eot_gradient
from .query import NES, SPSA, QueryAttack, margin_loss

ATTACKS = {"fgsm": FGSM, "bim": BIM, "mim": MIM, "pgd": PGD, "nes": NES, "spsa": SPSA, "apgd": APGD}


def make_attack(name: str, **kwargs):
    """An attack by name (``bim``, ``mim``, ``pgd``, ``fgsm``, ``nes``, ``spsa``, ``apgd``) with overrides."""
    try:
        cls = ATTACKS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; known: {', '.join(ATTACKS)}") from None
    return cls(**kwargs)


__all__ = ["APGD", "ATTACKS", "Attack", "AttackResult", "BIM", "FGSM", "GradientAttack", "MIM", "NES", "Norm", "PGD",
           "QueryAttack", "SPSA", "eot_gradient", "make_attack", "margin_loss"]
