"""The ledger's convergence gate (semlib.gate): a claim keeps its verdict only where every check
of its ``gate`` passed for every defense it names; the rest is "not evaluable", what the budget
run said kept beside it."""
import numpy as np
import pandas as pd
import pytest

from semlib import gate
from semlib.claims import Claim, Plan


def test_qualify_keeps_a_verdict_only_where_the_named_attacks_converged():
    plan = Plan([Claim("needs", "t", "f", "06b_adaptive", [("F", ">", "SEM")], [("apgd", "untargeted")],
                       converged=["SEM", "F"]),
                 Claim("free", "t", "f", "03_whitebox_transfer", [("H", ">", "I")], [("bim", "untargeted")]),
                 Claim("absent", "t", "f", "06b_adaptive", [("G", ">", "SEM")], [("apgd", "untargeted")],
                       converged=["SEM", "G"])])
    ledger = pd.DataFrame({"claim": ["needs", "free", "absent"], "verdict": ["supported", "supported", "not computed"],
                           "comparisons": ["F > SEM: ... -> supported", "H > I: ...", ""], "notes": ["", "kept", ""]})
    checks = pd.DataFrame({"check": ["converged"] * 3 + ["budget_converged"] * 3 + ["asr_reaches_one"],
                           "defense": ["SEM", "F", "G"] * 2 + ["SEM"],
                           "status": ["fail", "pass", "pass", "pass", "pass", "pass", "fail"]})
    q = gate.qualify(ledger, plan, checks).set_index("claim")
    assert q.at["needs", "verdict"] == "not evaluable"
    assert "SEM (converged fail)" in q.at["needs", "notes"] and "F (" not in q.at["needs", "notes"]
    assert "say supported" in q.at["needs", "notes"]  # the budget's own verdict stays readable
    assert q.at["needs", "comparisons"] == "attack not converged on SEM; at the budget run: F > SEM: ... -> supported"
    assert (q.at["free", "verdict"], q.at["free", "notes"]) == ("supported", "kept")
    details = pd.DataFrame({"claim": ["needs", "free"], "verdict": ["supported", "supported"]})
    gated = gate.qualify_comparisons(details, plan, checks)  # the ledger figure shows the gate too
    assert list(gated.verdict) == ["not evaluable", "supported"] and list(gated.budget_verdict) == ["supported"] * 2
    assert q.at["absent", "verdict"] == "not computed"  # nothing to qualify
    assert list(ledger.verdict) == ["supported", "supported", "not computed"]  # the input is not changed
    passed = checks.assign(status="pass")
    assert gate.qualify(ledger, plan, passed).equals(ledger)  # converged everywhere: nothing changes
    no_sweep = checks[checks.defense != "F"]  # F's convergence never measured: no evidence, not a pass
    assert "F (no evidence)" in gate.qualify(ledger, plan, no_sweep).set_index("claim").at["needs", "notes"]
    table_short = passed.assign(status=np.where(passed.check == "budget_converged", "fail", "pass"))
    q = gate.qualify(ledger, plan, table_short).set_index("claim")  # the sweep converged, the table's budget not
    assert q.at["needs", "verdict"] == "not evaluable" and "F (budget_converged fail)" in q.at["needs", "notes"]




def test_a_claim_waits_only_for_the_checks_of_its_own_gate():
    """adaptive_strongest waits for ``plateau`` alone: it stands where the plateau passed even
    though the sweeps' ``converged`` failed, and falls where the plateau failed or was not run."""
    plan = Plan([Claim("strong", "t", "f", "06b_adaptive", [("F", ">", "SEM")], [("strongest", "plateau budget")],
                       score="strongest", converged=["SEM", "F"], gate=["plateau"]),
                 Claim("table", "t", "f", "06b_adaptive", [("F", ">", "SEM")], [("robust", "linf 4/255")],
                       score="robust", converged=["SEM", "F"])])
    ledger = pd.DataFrame({"claim": ["strong", "table"], "verdict": ["supported", "supported"],
                           "comparisons": ["F > SEM: ...", "F > SEM: ..."], "notes": ["", ""]})
    checks = pd.DataFrame({"check": ["converged"] * 2 + ["budget_converged"] * 2 + ["plateau"] * 2,
                           "defense": ["SEM", "F"] * 3, "status": ["fail", "fail", "pass", "pass", "pass", "pass"]})
    q = gate.qualify(ledger, plan, checks).set_index("claim")
    assert q.at["strong", "verdict"] == "supported" and q.at["table", "verdict"] == "not evaluable"
    assert set(gate.unconverged(plan, checks)) == {"table"}
    failed = checks.assign(status=np.where((checks.check == "plateau") & (checks.defense == "F"), "fail", checks.status))
    assert gate.unconverged(plan, failed)["strong"] == {"F": "plateau fail"}
    assert gate.unconverged(plan, checks[checks.check != "plateau"])["strong"] == {"SEM": "no evidence",
                                                                                   "F": "no evidence"}
    with pytest.raises(ValueError, match="gate some of"):
        Claim("typo", "t", "f", "06b_adaptive", [("F", ">", "SEM")], [("a", "b")], gate=["platau"])
