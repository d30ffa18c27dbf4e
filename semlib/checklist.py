"""The evaluation checklist of Carlini et al. (2019, "On Evaluating Adversarial Robustness"),
computed from a preset's outputs: for every defense where the data exist, a check with
``pass``, ``fail`` or ``no evidence`` and the numbers behind it.

Paired checks ("attack X is at least as strong as attack Y") compare per-image minimal
distortions on the same images (:mod:`semlib.paired`: geometric-mean ratio ``d_Y / d_X`` with a
bootstrap interval; images never broken bounded by the pixel range). A paired check fails when
X needs significantly *more* distortion than Y: the one-sided Wilcoxon test of that direction,
Holm-adjusted over every paired check of the list, below ``alpha``. The other checks:

* ``asr_reaches_one``: every image the defense classifies correctly is broken, within the
  search, by some white-box attack (03);
* ``more_steps_never_weaken`` / ``more_eot_never_weaken`` / ``more_budget_never_weaken`` (both
  raised together, 06b's joint sweep): robust accuracy never rises with a
  larger budget beyond sampling noise, paired on the same images (06b ``convergence_rows``): for
  each pair of consecutive sweep values and for the smallest against the largest (a rise spread
  over many steps), the images robust only at the larger one against those robust only at the
  smaller one, an exact one-sided sign test (McNemar), Holm-adjusted over every pair of the list,
  below ``alpha``; ``estimate`` is the largest net rise in points; "no evidence" without two
  values or without any robust image (nothing could rise);
* ``converged``: the last doubling (or more) of iterations, of EOT samples and of the joint
  sweep's EOT passes changes robust accuracy by less than one point;
* ``budget_converged``: robust accuracy at the budget the robust-accuracy table used (its steps x
  EOT, a point of the sweep) is within one point of each sweep's largest budget (the same rule
  as ``converged``: the table's attack is as strong as the sweep could make it); "no evidence"
  when the sweep lacks that point;
* ``plateau``: at the ``STRONGEST`` budget (S x E, 06b's ``CONVERGENCE`` ``plateau``), doubling
  the iterations (2S x E) and doubling the EOT samples (S x 2E) each change robust accuracy by
  less than one point, on the same images; a deterministic model has only the first;
* ``unbounded_succeeds``: at an Linf budget >= 0.5 no image stays robust (06b).

:mod:`semlib.gate` applies the checklist to the ledger (claims that need a converged attack).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import paired
from .claims import Curve, panel_table, read_rows

WB = [("bim", "untargeted"), ("mim", "untargeted"), ("pgd", "untargeted"),
      ("bim", "targeted"), ("mim", "targeted"), ("pgd", "targeted")]
_U = [p for p in WB if p[1] == "untargeted"]
_T = [p for p in WB if p[1] == "targeted"]
_QUERY = [("nes", "untargeted"), ("spsa", "untargeted"), ("nes", "targeted"), ("spsa", "targeted")]
_WB_FOR_QUERY = [("bim", "untargeted"), ("bim", "untargeted"), ("bim", "targeted"), ("bim", "targeted")]

SWEEP_CHECKS = {"steps": "more_steps_never_weaken", "eot": "more_eot_never_weaken", "joint": "more_budget_never_weaken"}
# (check, defense, (source, curve, panels) of the attack expected to be at least as strong, the same of the other)
PAIRED = [
    *[("whitebox_vs_transfer", "SEM", ("03_whitebox_transfer", "A", WB), ("03_whitebox_transfer", t, WB)) for t in "CD"],
    *[("iterative_vs_single_step", d if d != "A" else "SEM", ("06b_adaptive", d, [("bim", "untargeted")]),
       ("06b_adaptive", d, [("fgsm", "untargeted")])) for d in "AFG"],
    *[("targeted_implies_untargeted", d if d != "A" else "SEM", ("03_whitebox_transfer", d, _U),
       ("03_whitebox_transfer", d, _T)) for d in "AFGHI"],
    ("gradient_free_not_stronger", "SEM", ("03_whitebox_transfer", "A", _WB_FOR_QUERY), ("04_query_blackbox", "E", _QUERY)),
    ("gradient_free_not_stronger", "F", ("03_whitebox_transfer", "F", _WB_FOR_QUERY), ("04_query_blackbox", "J", _QUERY)),
]
TEXT = {
    "whitebox_vs_transfer": "white-box (A) at least as strong as transfer from a substitute",
    "iterative_vs_single_step": "iterative (BIM) at least as strong as single-step (FGSM)",
    "targeted_implies_untargeted": "an untargeted attack needs no more distortion than a targeted one",
    "gradient_free_not_stronger": "gradient-free (NES, SPSA) no stronger than white-box (else gradients are masked)",
    "asr_reaches_one": "every correctly classified image is broken at a large enough eps",
    "more_steps_never_weaken": "more attack iterations never weaken the attack",
    "more_eot_never_weaken": "more EOT samples never weaken the attack",
    "more_budget_never_weaken": "more iterations and EOT samples together never weaken the attack",
    "converged": "the last doubling (or more) of iterations, EOT samples and both together moves robust accuracy < 1 point",
    "budget_converged": "robust accuracy at the table's budget is within 1 point of the sweep's largest budgets",
    "plateau": "doubling the strongest budget's iterations, and its EOT samples, each move robust accuracy < 1 point",
    "unbounded_succeeds": "an unbounded attack (Linf >= 0.5) leaves no image robust",
}


def _side(rows: pd.DataFrame | None, curve: str, panels) -> pd.DataFrame | None:
    """Distortions of ``curve`` per image, one column per listed panel (in order), or None."""
    if rows is None:
        return None
    cols = []
    for panel in panels:
        try:
            t, _ = panel_table(rows, Curve.parse(curve), [panel], "distortion")
        except ValueError:
            return None
        cols.append(t.iloc[:, 0])
    return pd.concat(cols, axis=1, keys=range(len(cols)))


def _attacks(curve: str, panels) -> str:
    """``curve`` with its panels' attacks and goals, e.g. ``A fgsm untargeted``."""
    return " ".join([curve, *("/".join(dict.fromkeys(p[i] for p in panels)) for i in (0, 1))])


def _row(check: str, defense: str, status: str, evidence: str, **numbers) -> dict:
    return {"check": check, "defense": defense, "text": TEXT[check], "status": status, "evidence": evidence,
            **{k: numbers.get(k, np.nan) for k in ("estimate", "lo", "hi", "n")}}


def run(outputs: str | os.PathLike, preset: str, *, ceiling: float, norm: str = "linf", alpha: float = 0.05,
        n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every check on ``<outputs>/<notebook>/<preset>/`` tables; one row per check and defense."""
    root = Path(outputs)
    tables: dict[str, pd.DataFrame | None] = {}

    def rows_of(source: str, name: str = "distortions") -> pd.DataFrame | None:
        if (source, name) not in tables:
            path = root / source / preset / f"tab_{name}.csv"
            tables[source, name] = (read_rows(path) if name == "distortions" else pd.read_csv(path)) \
                if path.is_file() else None
        return tables[source, name]

    results, out = [], []
    for check, defense, (sx, cx, px), (sy, cy, py) in PAIRED:
        a, b = _side(rows_of(sx), cx, px), _side(rows_of(sy), cy, py)
        if a is None or b is None or a.index.intersection(b.index).empty:
            out.append(_row(check, defense, "no evidence", f"no {cx if a is None else cy} curves on "
                            f"{px if a is None else py} in {sx if a is None else sy}"))
            continue
        both = a.index.intersection(b.index)
        pairs = paired.Pairs.from_distortions(a.loc[both].to_numpy(), b.loc[both].to_numpy(), ceiling=ceiling,
                                              norm_=norm)
        r = paired.compare(pairs, ">", 1.25, n_boot=n_boot, seed=seed, alpha=alpha)
        nx, ny = (cx, cy) if cx != cy else (_attacks(cx, px), _attacks(cy, py))  # name what differs
        results.append((len(out), r, nx))
        out.append(_row(check, defense, "pending", f"d({ny}) / d({nx}) on {len(py)} panel(s)", estimate=r["ratio"],
                        lo=r["lo"], hi=r["hi"], n=r["n"]))
    adjusted = paired.holm([r["p"][paired.CONTRADICTED] for _, r, _ in results])
    for (i, r, nx), p in zip(results, adjusted):
        if r["n"] == 0:
            out[i].update(status="no evidence", evidence=out[i]["evidence"] + ": no image both classify correctly")
        else:
            out[i].update(status="fail" if p < alpha else "pass",
                          evidence=f"{out[i]['evidence']}: {r['ratio']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}], "
                                   f"n {r['n']}, Holm p ({nx} needs more) {p:.3g}")
    out += _asr_reaches_one(rows_of("03_whitebox_transfer"))
    out += _convergence(rows_of("06b_adaptive", "convergence_rows"), alpha)
    out += _budget(rows_of("06b_adaptive", "convergence_rows"), rows_of("06b_adaptive", "robust_rows"))
    out += _plateau(rows_of("06b_adaptive", "convergence_rows"))
    out += _unbounded(rows_of("06b_adaptive", "robust_rows"))
    return pd.DataFrame(out)


def _asr_reaches_one(rows: pd.DataFrame | None) -> list[dict]:
    if rows is None:
        return [_row("asr_reaches_one", "all", "no evidence", "03_whitebox_transfer has not run")]
    out = []
    for d in "AFGHI":
        t = _side(rows, d, WB)
        if t is None:
            continue
        ok = rows[(rows.scenario == d) & (rows.variant == "sem")].groupby("example").clean_correct.all()
        t = t.loc[ok[ok].index]
        never = int(t.isna().all(axis=1).sum())
        out.append(_row("asr_reaches_one", "SEM" if d == "A" else d, "pass" if never == 0 and len(t) else
                        "fail" if never else "no evidence",
                        f"{never} of {len(t)} correctly classified images unbroken by every white-box attack within "
                        f"the search", estimate=never, n=len(t)))
    return out


def _convergence(rows: pd.DataFrame | None, alpha: float) -> list[dict]:
    if rows is None:
        return [_row(c, "all", "no evidence", "06b_adaptive has no per-image convergence rows")
                for c in ("more_steps_never_weaken", "more_eot_never_weaken", "more_budget_never_weaken", "converged")]
    out, tests, last = [], [], {}
    if "joint" not in set(rows.sweep):
        out.append((None, _row("more_budget_never_weaken", "all", "no evidence", "06b_adaptive ran no joint sweep")))
    for (label, sweep), g in rows[rows.sweep.isin(list(SWEEP_CHECKS))].groupby(["label", "sweep"], sort=False):
        check = SWEEP_CHECKS[sweep]
        wide = g.pivot(index="example", columns="value", values="robust").sort_index(axis=1)  # one row per image
        robust = wide.dropna().astype(bool)  # the images of every sweep value
        values, pct = [int(v) for v in robust.columns], 100 * robust.mean().to_numpy()
        where = f"robust accuracy {', '.join(f'{r:.1f}' for r in pct)} % at {sweep} {', '.join(map(str, values))}" + (
            f" ({len(wide) - len(robust)} images missing at some value left out)" if len(robust) < len(wide) else "")
        if len(values) < 2 or not robust.to_numpy().any():
            out.append((None, _row(check, label, "no evidence", f"{where}: nothing to compare", n=len(robust))))
            continue
        # consecutive values, and the smallest against the largest (a rise spread over many steps)
        pairs = list(zip(values, values[1:])) + ([(values[0], values[-1])] if len(values) > 2 else [])
        counts = [(a, b, int((robust[b] & ~robust[a]).sum()), int((robust[a] & ~robust[b]).sum())) for a, b in pairs]
        out.append(((len(tests), counts), _row(check, label, "pending", where, n=len(robust))))
        tests += [stats.binomtest(r, r + f, 0.5, alternative="greater").pvalue if r + f else 1.0 for *_, r, f in counts]
        if values[-1] >= 2 * values[-2]:
            last.setdefault(label, []).append((f"{sweep} {values[-2]} -> {values[-1]}", float(pct[-1] - pct[-2]),
                                               len(robust)))
    adjusted = paired.holm(tests) if tests else []
    for test, row in out:
        if test is not None:
            first, counts = test
            worst = min(adjusted[first:first + len(counts)])
            moves = "; ".join(f"{a} -> {b}: {r} images robust only at {b}, {f} only at {a}" for a, b, r, f in counts)
            row.update(status="fail" if worst < alpha else "pass",
                       estimate=max(100 * (r - f) / row["n"] for *_, r, f in counts),  # the largest net rise, points
                       evidence=f"{row['evidence']}; {moves}; smallest Holm p (larger budget weaker) {worst:.3g}")
    done = [row for _, row in out]
    for label, moves in last.items():
        worst = max(abs(m) for _, m, _ in moves)
        done.append(_row("converged", label, "pass" if worst < 1 else "fail",
                         "; ".join(f"{s}: {m:+.1f} points (1 image = {100 / n:.1f})" for s, m, n in moves),
                         estimate=worst, n=min(n for *_, n in moves)))
    done += [_row("converged", label, "no evidence", "no sweep of this defense has a last doubling with a robust image "
                  "to compare") for label in rows.label.unique() if label not in last]
    return done


def _budget(sweep: pd.DataFrame | None, table: pd.DataFrame | None) -> list[dict]:
    if sweep is None or table is None or not {"steps", "eot"} <= set(table.columns) & set(sweep.columns):
        return [_row("budget_converged", "all", "no evidence", "06b_adaptive has no convergence or robust rows "
                     "with their budgets")]
    out = []
    for label, g in sweep[sweep.sweep.isin(list(SWEEP_CHECKS))].groupby("label", sort=False):
        budgets = table[table.label == label][["steps", "eot"]].drop_duplicates()
        at = g[(g.steps == budgets.steps.iloc[0]) & (g.eot == budgets.eot.iloc[0])] if len(budgets) == 1 else g[:0]
        if at.empty:
            out.append(_row("budget_converged", label, "no evidence", "the table's budget is not a point of the "
                            "sweep (or the table used several)"))
            continue
        base, moves, worst = at.drop_duplicates("example").set_index("example").robust.astype(bool), [], 0.0
        for name, s in g.groupby("sweep", sort=False):
            largest = s[s.value == s.value.max()]
            top = largest.set_index("example").robust.astype(bool)
            both = base.index.intersection(top.index)
            drop = 100 * (base[both].mean() - top[both].mean())
            worst = max(worst, abs(drop))
            point = f"{int(largest.steps.iloc[0])} x {int(largest.eot.iloc[0])}" if name == "joint" else int(s.value.max())
            moves.append(f"{name} {point}: {100 * base[both].mean():.1f} -> {100 * top[both].mean():.1f} % "
                         f"({int((base[both] & ~top[both]).sum())} images robust only at the table's budget, "
                         f"{int((top[both] & ~base[both]).sum())} only at the largest)")
        out.append(_row("budget_converged", label, "pass" if worst < 1 else "fail",
                        f"the table's {int(budgets.steps.iloc[0])} steps x {int(budgets.eot.iloc[0])} EOT against the "
                        f"sweep's largest: " + "; ".join(moves), estimate=worst, n=len(base)))
    return out


def _plateau(rows: pd.DataFrame | None) -> list[dict]:
    at = None if rows is None else rows[rows.sweep.isin(["plateau_steps", "plateau_eot"])]
    if at is None or at.empty:
        return [_row("plateau", "all", "no evidence", "06b_adaptive ran no plateau check (CONVERGENCE plateau)")]
    out = []
    for label, g in at.groupby("label", sort=False):
        moves, worst, n = [], 0.0, []
        for sweep, s in g.groupby("sweep", sort=False):  # robust per image at the budget and at its doubling
            wide = s.pivot(index="example", columns=["steps", "eot"], values="robust").sort_index(axis=1).dropna()
            (a, b), robust = wide.columns, wide.astype(bool)
            drop = 100 * (robust[a].mean() - robust[b].mean())
            worst, n = max(worst, abs(drop)), n + [len(robust)]
            moves.append(f"{a[0]} x {a[1]} -> {b[0]} x {b[1]}: {int(robust[a].sum())} -> {int(robust[b].sum())} of "
                         f"{len(robust)} robust ({int((robust[b] & ~robust[a]).sum())} only at the larger, "
                         f"{int((robust[a] & ~robust[b]).sum())} only at the smaller)")
        alone = " (deterministic: one EOT pass is exact)" if set(g.sweep) == {"plateau_steps"} else ""
        out.append(_row("plateau", label, "pass" if worst < 1 else "fail", "; ".join(moves) + alone,
                        estimate=worst, n=min(n)))
    return out


def _unbounded(rows: pd.DataFrame | None) -> list[dict]:
    big = None if rows is None else rows[(rows.norm == "linf") & (rows.eps >= 0.5)]
    if big is None or big.empty:
        return [_row("unbounded_succeeds", "all", "no evidence", "no robust-accuracy budget with Linf eps >= 0.5")]
    out = []
    for label, g in big.groupby("label", sort=False):
        k = int(g.robust.sum())
        out.append(_row("unbounded_succeeds", label, "pass" if k == 0 else "fail",
                        f"{k} of {len(g)} images robust at Linf {g.eps.max():g}", estimate=k, n=len(g)))
    return out
