"""The ledger's convergence gate: a claim judged by an attack that must have converged
(``converged`` in ``params/claims.yaml``) keeps its verdict only where the checklist's
convergence checks passed for every defense it names (:mod:`semlib.checklist`). Which checks
gate a claim is its ``gate`` (default ``converged`` and ``budget_converged``: the sweep's
plateau and the robust-accuracy table's budget on it; ``plateau`` for the claim judged at the
``STRONGEST`` budget). A gated claim is "not evaluable"; what the budget run said stays in its
notes and in ``budget_verdict``.
"""
from __future__ import annotations

import pandas as pd

from .claims import Plan
from .paired import NOT_EVALUABLE


def unconverged(plan: Plan, checks: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Per claim of ``plan`` whose ``converged`` defenses did not all pass each of the claim's
    ``gate`` checks (failed, or no evidence): those defenses and why."""
    out = {}
    for claim in plan.claims:
        conv = checks[checks.check.isin(claim.gate)]
        status = {d: "pass" if len(g) == len(claim.gate) and (g.status == "pass").all() else
                  ", ".join(f"{c} {st}" for c, st in zip(g.check, g.status) if st != "pass") or "no evidence"
                  for d, g in conv.groupby("defense", sort=False)}
        missing = {d: status.get(d, "no evidence") for d in claim.converged if status.get(d) != "pass"}
        if missing:
            out[claim.key] = missing
    return out


def qualify(ledger: pd.DataFrame, plan: Plan, checks: pd.DataFrame) -> pd.DataFrame:
    """``ledger`` with every claim of :func:`unconverged` made "not evaluable", saying which and why."""
    out = ledger.copy()
    for key, missing in unconverged(plan, checks).items():
        at = out.index[(out.claim == key) & (out.verdict != "not computed")]
        if at.empty:
            continue
        why = ", ".join(f"{d} ({st})" for d, st in missing.items())
        note = (f"not converged: the checklist's convergence checks do not pass for {why}; at the budget run the "
                f"comparisons say {out.at[at[0], 'verdict']}")
        old = out.at[at[0], "notes"]
        out.loc[at, "notes"] = note + (f"; {old}" if isinstance(old, str) and old else "")
        out.loc[at, "comparisons"] = f"attack not converged on {', '.join(missing)}; at the budget run: " + \
            out.loc[at, "comparisons"].astype(str)
        out.loc[at, "verdict"] = NOT_EVALUABLE
    return out


def qualify_comparisons(details: pd.DataFrame, plan: Plan, checks: pd.DataFrame) -> pd.DataFrame:
    """``details`` (one row per comparison) with the comparisons of every claim of
    :func:`unconverged` made "not evaluable"; ``budget_verdict`` keeps what the budget run said."""
    gated = details.claim.isin(list(unconverged(plan, checks)))
    return details.assign(budget_verdict=details.verdict, verdict=details.verdict.mask(gated, NOT_EVALUABLE))
