"""Certification of the SEM and its contrasts (notebook 06): Cohen's bound needs one Gaussian
draw for the whole classifier, so the certified SEM is the shared-noise version at one sigma
(its members add no noise of their own; its random draw does not depend on the input, the
paper's eq. 4 argument), and F and G are certified the same way. ``study`` is a
:class:`semlib.study.Study` (its models, images and cache)."""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from .ensemble import Ensemble, StochasticEnsemble
from .smoothing import NoisyClassifier, certify


def certifiable(study, sigma: float) -> dict[str, nn.Module]:
    """Smoothed classifiers with ONE shared noise draw ``x + delta``, delta ~ N(0, sigma^2 I),
    so Cohen's certificate applies: the SEM over the collection's sub-models trained at
    ``sigma`` (its random draw is independent of the input, eq. 4), the fixed ensemble of
    the F members, and the single model of G."""
    t = study.table.set_index("name")
    names = [n for n in study.collection("sem") if float(t.sigma[n]) == float(sigma)]
    if not names:
        raise ValueError(f"no admitted sub-model at sigma {sigma}; pick one of the zoo's sigmas {study.spec.sigmas}")
    families = {n: t.family[n] for n in names}
    k = study.cfg.k_range
    n_fam = len(set(families.values()))
    sem = StochasticEnsemble({n: NoisyClassifier(study.submodel(n).base, 0.0) for n in names}, families,
                             (min(k[0], n_fam), min(k[1], n_fam)))
    base = lambda arch: study.submodel(study.spec.submodel(arch, sigma).name).base  # noqa: E731
    space = study.spec.noise_space
    return {"SEM": NoisyClassifier(sem, sigma, space),
            "F": NoisyClassifier(Ensemble([base(a) for a in study.baseline_spec.members],
                                          names=study.baseline_spec.members).to(study.device), sigma, space),
            "G": NoisyClassifier(base(study.cfg.single_arch), sigma, space)}


def certify_rows(study, models: dict[str, nn.Module], sigma: float, n0: int, n: int, alpha: float,
                 progress: bool = True) -> pd.DataFrame:
    """Cohen's CERTIFY per image and model (cached): label, example, prediction, correct, radius."""

    def compute(model: nn.Module, sl: slice, gen: torch.Generator) -> pd.DataFrame:
        x, _, _ = study.images(sl)
        cert = certify(model, x, sigma, n0, n, alpha, generator=gen)
        pred = cert.prediction.cpu()
        return pd.DataFrame({"example": study.ids[sl].numpy(), "prediction": pred.numpy(),
                             "correct": (pred == study.y[sl]).numpy(), "radius": cert.radius.cpu().numpy()})

    # "base_draws": a random base draws from the shard's generator (keys of the fixed version)
    key = lambda label: {"certify": label, "sigma": sigma, "n0": n0, "n": n, "alpha": alpha,  # noqa: E731
                         "base_draws": "seeded"}
    return study.per_model(models, key, compute, "certify", progress)
