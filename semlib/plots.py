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


def asr_panels(tab: pd.DataFrame, *, solid: list[str], dashed: list[str] = (), rows: str = "goal",
               cols: str = "attack", title: str | None = None, xlim: float | None = None, band: bool = True,
               norm: str = "linf"):
    """ASR-vs-distortion panels in the paper's layout: one panel per (row, column) value, solid
    lines for ``solid`` labels (the SEM's attackers), dashed for ``dashed`` (contrast methods),
    shaded 95% Clopper-Pearson bands. ``tab``: :func:`semlib.study.asr_table` output."""
    _style()
    row_vals = list(dict.fromkeys(tab[rows])) if rows else [None]
    col_vals = list(dict.fromkeys(tab[cols]))
    labels = [*solid, *dashed]
    palette = dict(zip(labels, sns.color_palette("tab10", len(labels))))
    fig, axes = plt.subplots(len(row_vals), len(col_vals), figsize=(3.6 * len(col_vals), 2.9 * len(row_vals)),
                             squeeze=False, sharey=True)
    for i, rv in enumerate(row_vals):
        for j, cv in enumerate(col_vals):
            ax = axes[i, j]
            panel = tab[(tab[cols] == cv) & ((tab[rows] == rv) if rows else True)]
            for label in labels:
                d = panel[panel.label == label]
                if d.empty:
                    continue
                ax.plot(d.eps, d.asr, ls="--" if label in dashed else "-", color=palette[label], label=label, lw=1.6)
                if band:
                    ax.fill_between(d.eps, d.lo, d.hi, color=palette[label], alpha=0.05, lw=0)
            ax.set_title(" · ".join(str(v).upper() if k == cols else str(v) for k, v in ((cols, cv), (rows, rv)) if v))
            ax.set_xlabel(f"ε ({'L∞' if norm == 'linf' else 'L2'}, pixels in [0, 1])")
            ax.set_ylim(-0.02, 1.02)
            if xlim is not None:
                ax.set_xlim(0, xlim)
            if j == 0:
                ax.set_ylabel("attack success rate")
    handles, names = axes[0, 0].get_legend_handles_labels()
    for ax in axes.flat[1:]:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                handles.append(h)
                names.append(n)
    fig.legend(handles, names, loc="upper center", ncol=min(len(names), 9), bbox_to_anchor=(0.5, 1.0), frameon=False)
    if title:
        fig.suptitle(title, y=1.06)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def accuracy_bars(df: pd.DataFrame, x: str = "model", y: str = "accuracy", title: str | None = None):
    """Bars of an accuracy (in [0, 1]) per model with error bars from columns ``lo``/``hi``."""
    _style()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(df) + 1.5), 3.2))
    pos = range(len(df))
    ax.bar(pos, df[y] * 100, color=sns.color_palette("tab10", len(df)))
    if {"lo", "hi"} <= set(df.columns):
        ax.errorbar(pos, df[y] * 100, yerr=[(df[y] - df.lo) * 100, (df.hi - df[y]) * 100], fmt="none", ecolor="k",
                    capsize=3, lw=1)
    ax.set_xticks(list(pos), df[x], rotation=35, ha="right")
    ax.set_ylabel(f"{y} (%)")
    ax.set_ylim(0, 100)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def certified_curves(df: pd.DataFrame, title: str | None = None, xlabel: str = "L2 radius (pixels in [0, 1])"):
    """Certified accuracy against L2 radius, one line per model (columns model, radius, accuracy)."""
    _style()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    sns.lineplot(data=df, x="radius", y="accuracy", hue="model", ax=ax, drawstyle="steps-post")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def convergence(df: pd.DataFrame, title: str | None = None):
    """Robust accuracy (percent, Clopper-Pearson band) against attack iterations, against EOT
    samples and, where the sweep has it, against both raised together (EOT passes per attack
    run) and, where it has one, at the plateau's budget S x E with each axis doubled, one line per
    model (:func:`semlib.robust.table` of the per-image rows of :func:`semlib.robust.convergence`
    by label, sweep and value)."""
    _style()
    panels = [("steps", "APGD iterations"), ("eot", "EOT samples per iteration"),
              ("joint", "both raised: iterations x EOT samples"), ("plateau_steps", "at the plateau's budget")]
    panels = [p for p in panels if p[0] in ("steps", "eot") or (df.sweep == p[0]).any()]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.4), sharey=True)
    for ax, (sweep, label) in zip(axes, panels):
        if sweep == "plateau_steps":
            _plateau(ax, df, label)
            continue
        for model, g in df[df.sweep == sweep].groupby("label", sort=False):
            g = g.sort_values("value")
            line, = ax.plot(g.value, g.robust, marker="o", label=model)
            ax.fill_between(g.value, g.robust_lo, g.robust_hi, alpha=0.15, color=line.get_color())
        ax.set_xscale("log", base=2)
        ax.set_xlabel(label)
    axes[0].set_ylabel("robust accuracy (%)")
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _plateau(ax, df: pd.DataFrame, label: str) -> None:
    """Robust accuracy at S x E, 2S x E and S x 2E per model (a deterministic one: the first two)."""
    ticks = []
    for model, g in df[df.sweep.isin(["plateau_steps", "plateau_eot"])].groupby("label", sort=False):
        s, e = (g[g.sweep == k].sort_values("value") for k in ("plateau_steps", "plateau_eot"))
        points = pd.concat([s, e.iloc[1:]])
        ax.errorbar(range(len(points)), points.robust, yerr=[points.robust - points.robust_lo,
                    points.robust_hi - points.robust], marker="o", capsize=3, label=model)
        if len(e) == 2 and not ticks:
            (a, b), (c, d) = s.value, e.value
            ticks = [f"{a} x {c}", f"{b} x {c}", f"{a} x {d}"]
    ax.set_xticks(range(len(ticks)), ticks)
    ax.set_xlabel(f"{label}: iterations x EOT samples")


VERDICT_COLORS = {"supported": "#2a9d8f", "contradicted": "#e76f51", "equivalent": "#457b9d",
                  "inconclusive": "#8d99ae", "not evaluable": "#d4a373"}


def ledger(details: pd.DataFrame, bound: float = 1.25, title: str = "claims ledger (95% bootstrap CI)"):
    """Forest plot of the ledger's comparisons, coloured by verdict (``details``: one row per
    comparison with claim, score, x, relation, y, estimate, lo, hi, verdict): distortion
    ratios on a log axis with the equivalence bounds, clean and robust error differences beside them."""
    _style()
    ratio = details.score == "distortion"  # the rest are errors: clean, robust at a budget, at the strongest attack
    parts = [(k, d.reset_index(drop=True)) for k, d in (("distortion", details[ratio]), ("error", details[~ratio]))]
    parts = [(k, d) for k, d in parts if len(d)]
    fig, axes = plt.subplots(len(parts), 1, figsize=(7.5, 0.42 * len(details) + 1.2 * len(parts)), squeeze=False,
                             gridspec_kw={"height_ratios": [max(len(d), 1) for _, d in parts]})
    for ax, (kind, d) in zip(axes[:, 0], parts):
        for i, r in d.iterrows():
            ax.errorbar(r.estimate, i, xerr=[[r.estimate - r.lo], [r.hi - r.estimate]], fmt="o", capsize=3,
                        color=VERDICT_COLORS.get(r.verdict, "k"))
        if kind == "distortion":
            ax.set_xscale("log")
            ax.axvline(1, color="k", lw=0.8)
            for b in (1 / bound, bound):
                ax.axvline(b, color="k", lw=0.6, ls=":")
            ax.set_xlabel("distortion ratio d(y) / d(x)  (> 1: x is the more vulnerable)")
        else:
            ax.axvline(0, color="k", lw=0.8)
            ax.set_xlabel("MC error(x) - error(y): clean, or robust (1 - robust accuracy)")
        ax.set_yticks(range(len(d)), [f"{r.claim}: {r.x} {r.relation} {r.y}" for r in d.itertuples()], fontsize=8)
        ax.invert_yaxis()
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=v) for v, c in VERDICT_COLORS.items()]
    axes[0, 0].legend(handles=handles, fontsize=7, loc="best")
    axes[0, 0].set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def gallery(images: dict[str, torch.Tensor], tab: pd.DataFrame, title: str | None = None):
    """Per image (rows): the clean image, then for each defense its adversarial image at the
    minimal distortion and the perturbation amplified to the full range (grey = 0), titled with
    the distortion in 1/255 units. ``images``: ``{"clean": x, label: x_adv, ...}``."""
    _style()
    labels = [k for k in images if k != "clean"]
    x, n = images["clean"], len(images["clean"])
    fig, axes = plt.subplots(n, 1 + 2 * len(labels), figsize=(1.6 * (1 + 2 * len(labels)), 1.75 * n), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    show = lambda ax, img: ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())  # noqa: E731
    for i in range(n):
        row = tab[tab.example == tab.example.unique()[i]]
        show(axes[i, 0], x[i])
        axes[i, 0].set_title(f"clean: {CLASSES[int(row.label_true.iloc[0])]}", fontsize=8)
        for j, label in enumerate(labels):
            delta = images[label][i] - x[i]
            d = float(row[row.label == label].distortion.iloc[0])
            if not torch.isfinite(delta).all():  # the rerun search found no adversarial this time
                axes[i, 1 + 2 * j].set_title(f"{label}: not found again", fontsize=8)
                continue
            show(axes[i, 1 + 2 * j], images[label][i])
            axes[i, 1 + 2 * j].set_title(f"{label}: {d * 255:.1f}/255", fontsize=8)
            show(axes[i, 2 + 2 * j], 0.5 + delta / (2 * delta.abs().max().clamp_min(1e-12)))
            axes[i, 2 + 2 * j].set_title("perturbation, amplified", fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
