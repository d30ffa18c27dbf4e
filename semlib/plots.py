"""Figures: pure functions from tables to matplotlib figures, one seaborn style."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch

from .data import CLASSES

STYLE = {"style": "whitegrid", "context": "paper", "font_scale": 1.1}


def _style() -> None:
    sns.set_theme(**STYLE)


def image_grid(x: torch.Tensor, y: torch.Tensor, ncols: int = 10, title: str | None = None):
    """A grid of images ``x`` ``[N, 3, 32, 32]`` in [0, 1] titled with class names."""
    _style()
    n = len(x)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.45 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        ax.imshow(x[i].permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_title(CLASSES[int(y[i])], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def class_balance(df: pd.DataFrame):
    """Bar chart of images per class and split; ``df`` has columns class, split, count."""
    _style()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    sns.barplot(data=df, x="class", y="count", hue="split", ax=ax)
    ax.set_xlabel("")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def table1_heatmaps(ours: pd.DataFrame, paper: pd.DataFrame | None = None, title_ours: str = "this zoo"):
    """Table 1 as annotated heatmaps (percent): ours, and the paper's for the same architectures.

    Both tables have a column ``arch`` and value columns ``clean``, ``aca_<sigma>``.
    """
    _style()
    value_cols = [c for c in ours.columns if c == "clean" or c.startswith("aca_")]
    panels = [(title_ours, ours)]
    if paper is not None:
        panels.append(("paper (Table 1)", paper[paper.arch.isin(ours.arch)]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 0.8, 0.42 * len(ours) + 1.4),
                             squeeze=False)
    for ax, (title, df) in zip(axes[0], panels):
        mat = df.set_index("arch").reindex(ours.arch)[[c for c in value_cols if c in df.columns]]
        sns.heatmap(mat, annot=True, fmt=".1f", vmin=0, vmax=100, cmap="viridis", cbar=False, ax=ax,
                    annot_kws={"fontsize": 8})
        ax.set_title(title)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.set_xticklabels([c.get_text().replace("aca_", "ACA σ=") for c in ax.get_xticklabels()], rotation=0)
    fig.tight_layout()
    return fig


def accuracy_vs_sigma(df: pd.DataFrame, title: str | None = None):
    """Line plot of accuracy (clean at sigma 0, ACA above) against sigma, one line per architecture.
    ``df``: rows of :func:`semlib.zoo.zoo_table`."""
    _style()
    d = df.assign(accuracy=df.aca.where(df.sigma > 0, df.clean_accuracy) * 100)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    sns.lineplot(data=d, x="sigma", y="accuracy", hue="arch", marker="o", ax=ax)
    ax.set_xlabel("σ (training and smoothing noise, pixels)")
    ax.set_ylabel("accuracy (%): clean at σ=0, ACA above")
    ax.set_ylim(0, 100)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
