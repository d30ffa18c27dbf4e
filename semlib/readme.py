"""The README's results block, written from a preset's committed outputs, never by hand.

Between ``<!-- results:begin -->`` and ``<!-- results:end -->`` the README shows the headline
figures (the claims ledger's distortion ratios, Fig. 4) and the ledger itself (verdict, estimate,
interval, n) the evaluation checklist and the fixed-budget robust accuracy (the table's budgets and the
plateau's) of ``outputs/*/<preset>/``, each with the run
that produced it. The pipeline rewrites it after notebook 07 of the laptop preset, and
``make figures`` after redrawing; a missing run is said, not skipped silently.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .claims import markdown
from .outputs import project_root

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
PRESET = "laptop"  # the preset whose outputs are committed and shown
FIGURES = (("07_claims", "fig_ledger.png", "every claim's paired distortion ratio with its 95% interval"),
           ("03_whitebox_transfer", "fig_fig4.png", "Fig. 4: attack success rate vs Linf distortion, "
                                                     "attackers A-D on the SEM (solid), contrasts F-I (dashed)"))


def _run(folder: Path, count: bool = True) -> str:
    """Where a table came from: the run's date, CPU kind and (``count``) the notebook's image count."""
    m = json.loads((folder / "metrics.json").read_text())
    host = m.get("host", {})
    images = (m.get("metrics") or {}).get("images")
    return (f"{m.get('created_utc', '?')[:10]}, {host.get('cpu_capability') or 'CPU kind not recorded'}"
            f"{f', {images} images' if images and count else ''}, `{folder.relative_to(folder.parents[2])}`")


def _robust(folder: Path, table: str = "robust_accuracy") -> str:
    """A robust-accuracy table of 06b (``tab_<table>.csv``); with its attack's budget when it has one."""
    tab = pd.read_csv(folder / f"tab_{table}.csv")
    budget = "steps" in tab.columns
    lines = ["| defense | norm | eps |" + (" iterations x EOT |" if budget else "") +
             " clean MC accuracy % [95% CI] | robust accuracy % [95% CI] | images |", "|---" * (6 + budget) + "|"]
    for r in tab.itertuples():
        eps = f"{r.eps * 255:.0f}/255" if r.norm == "linf" and r.eps < 1 else f"{r.eps:g}"
        lines.append(f"| {r.label} | {r.norm} | {eps} |" + (f" {r.steps} x {r.eot} |" if budget else "") +
                     f" {r.clean:.1f} [{r.clean_lo:.1f}, {r.clean_hi:.1f}] | "
                     f"{r.robust:.1f} [{r.robust_lo:.1f}, {r.robust_hi:.1f}] | {r.images} |")
    return "\n".join(lines)


def _checklist(folder: Path) -> str:
    tab = pd.read_csv(folder / "tab_checklist.csv")
    def worst(status: pd.Series) -> str:  # a check with several rows for a defense fails if any row fails
        return "fail" if (status == "fail").any() else "pass" if (status == "pass").all() else "/".join(sorted(set(status)))

    grid = tab.pivot_table(index="check", columns="defense", values="status", aggfunc=worst, sort=False).fillna("–")
    lines = ["| check | " + " | ".join(grid.columns) + " |", "|---" * (len(grid.columns) + 1) + "|"]
    lines += [f"| {check} | " + " | ".join(row) + " |" for check, row in grid.iterrows()]
    return "\n".join(lines)


def block(root: str | Path, preset: str = PRESET) -> str:
    """The Markdown between the markers, from ``outputs/*/<preset>/`` under ``root``."""
    root = Path(root)
    parts = [f"*Generated from the committed `{preset}` outputs by `python -m semlib.readme` (run by the pipeline "
             f"and `make figures`); do not edit by hand.*", ""]
    for nb, name, caption in FIGURES:
        path = root / "outputs" / nb / preset / name
        parts += [f"![{caption}](outputs/{nb}/{preset}/{name})", f"*{caption}.*", ""] if path.is_file() else \
            [f"*No {name} in `outputs/{nb}/{preset}/` yet: run notebook {nb}.*", ""]
    ledger = root / "outputs" / "07_claims" / preset
    if (ledger / "tab_ledger.csv").is_file():
        parts += [f"**The claims ledger** ({_run(ledger)}):", "", markdown(pd.read_csv(ledger / "tab_ledger.csv")), ""]
    else:
        parts += [f"*No claims ledger for `{preset}` yet: run notebooks 02-07.*", ""]
    if (ledger / "tab_checklist.csv").is_file():
        parts += ["**The evaluation checklist** (Carlini et al. 2019, automated; evidence per cell in "
                  f"`outputs/07_claims/{preset}/tab_checklist.csv`):", "", _checklist(ledger), ""]
    adaptive = root / "outputs" / "06b_adaptive" / preset
    if (adaptive / "tab_robust_accuracy.csv").is_file():
        parts += ["**Robust accuracy at fixed budgets** (the strongest adaptive attack per image; images per row in the "
                  f"table; {_run(adaptive, count=False)}):",
                  "", _robust(adaptive), ""]
    if (adaptive / "tab_strongest.csv").is_file():
        parts += ["**At the plateau's budget** (APGD-CE with iterations and EOT samples raised together until doubling "
                  "either changed robust accuracy by less than a point on the sweep's images (the checklist's `plateau`, "
                  "for the defenses the sweep runs; the same budget for the others, a deterministic one with one EOT "
                  "sample), on more images; an upper bound on robust accuracy at that budget; images per row in the table; "
                  f"{_run(adaptive, count=False)}):", "",
                  _robust(adaptive, "strongest"), ""]
    if (adaptive / "tab_worst_case.csv").is_file():
        parts += ["**The worst case per image** (robust only where the fixed-budget attacks and the plateau's budget both "
                  f"failed, on the images both ran; {_run(adaptive, count=False)}):", "", _robust(adaptive, "worst_case"), ""]
    return "\n".join(parts).rstrip() + "\n"


def update(readme: str | Path, root: str | Path, preset: str = PRESET) -> bool:
    """Rewrite the block of ``readme``; returns whether its text changed. A README without the
    two markers is one clear error."""
    readme = Path(readme)
    text = readme.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{readme} needs one '{BEGIN}' line followed by one '{END}' line where the results go")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    new = f"{head}{BEGIN}\n{block(root, preset)}{END}{tail}"
    if new != text:
        readme.write_text(new)
    return new != text


if __name__ == "__main__":
    changed = update(project_root() / "README.md", project_root())
    print(f"README results block {'rewritten' if changed else 'already current'}")
