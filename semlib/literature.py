"""Published CIFAR-10 robust accuracies of other work, shown beside ours for context only:
other, much larger models, other training and other evaluations (each row cites its source).
RobustBench rows are AutoAttack robust accuracy from its ``model_info`` files
(https://github.com/RobustBench/robustbench/blob/master/model_info/cifar10/<norm>/<name>.json);
Cohen et al.'s rows are *certified* accuracy (a lower bound, not an attack), computed from the
per-image certify logs the authors released (locuslab/smoothing, ResNet-110, 500 test images).
Verified numbers for RSE and ADP under an adaptive attack were not found; none are listed.
"""
from __future__ import annotations

import pandas as pd

_RB = "RobustBench model_info/cifar10/{}/{}.json"
_COHEN = "Cohen, Rosenfeld, Kolter (ICML 2019), locuslab/smoothing data/certify/cifar10/resnet110/noise_{}"

# model, architecture, norm, eps, clean %, robust %, how robust was measured, source
_ROWS = [
    ("standard training", "WRN-28-10", "linf", 8 / 255, 94.78, 0.00, "AutoAttack", _RB.format("Linf", "Standard")),
    ("PGD adversarial training (Madry et al. 2018)", "WRN-34-10", "linf", 8 / 255, 87.14, 44.04, "AutoAttack",
     _RB.format("Linf", "Madry2018Towards")),
    ("adversarial training (Engstrom et al. 2019)", "ResNet-50", "linf", 8 / 255, 87.03, 49.25, "AutoAttack",
     _RB.format("Linf", "Engstrom2019Robustness")),
    ("adversarial training + 50M generated images (Wang et al. 2023)", "WRN-70-16", "linf", 8 / 255, 93.25, 70.69,
     "AutoAttack", _RB.format("Linf", "Wang2023Better_WRN-70-16")),
    ("standard training", "WRN-28-10", "l2", 0.5, 94.78, 0.00, "AutoAttack", _RB.format("L2", "Standard")),
    ("adversarial training (Engstrom et al. 2019)", "ResNet-50", "l2", 0.5, 90.83, 69.24, "AutoAttack",
     _RB.format("L2", "Engstrom2019Robustness")),
    ("adversarial training + 50M generated images (Wang et al. 2023)", "WRN-70-16", "l2", 0.5, 95.54, 84.86,
     "AutoAttack", _RB.format("L2", "Wang2023Better_WRN-70-16")),
    ("randomized smoothing, sigma 0.25 (Cohen et al. 2019)", "ResNet-110", "l2", 0.25, 74.8, 60.0,
     "certified (lower bound)", _COHEN.format("0.25")),
    ("randomized smoothing, sigma 0.25 (Cohen et al. 2019)", "ResNet-110", "l2", 0.5, 74.8, 42.8,
     "certified (lower bound)", _COHEN.format("0.25")),
    ("randomized smoothing, sigma 0.50 (Cohen et al. 2019)", "ResNet-110", "l2", 0.5, 65.2, 41.4,
     "certified (lower bound)", _COHEN.format("0.50")),
]


def published(norm: str | None = None) -> pd.DataFrame:
    """The published rows (all, or one ``norm``): model, arch, norm, eps, clean, robust (percent),
    measured_by, source."""
    df = pd.DataFrame(_ROWS, columns=["model", "arch", "norm", "eps", "clean", "robust", "measured_by", "source"])
    if norm is not None:
        if norm not in set(df.norm):
            raise ValueError(f"norm must be one of {sorted(set(df.norm))}, got {norm!r}")
        df = df[df.norm == norm].reset_index(drop=True)
    return df
