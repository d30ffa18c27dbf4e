"""The README's results block (semlib.readme): written from a preset's outputs between two markers,
idempotent, honest about what is missing, and the committed README's block is current."""
import json
from pathlib import Path

import pandas as pd
import pytest

from semlib import readme

ROOT = Path(__file__).resolve().parent.parent


def _outputs(root: Path, preset: str = "laptop") -> None:
    claims = root / "outputs" / "07_claims" / preset
    claims.mkdir(parents=True)
    pd.DataFrame({"claim": ["F_vs_G"], "text": ["F is more robust than G"], "verdict": ["supported"],
                  "comparisons": ["G > F: F/G distortion ratio 1.48 [1.11, 2.16], n 90 -> supported"],
                  "images": [90], "detectable": [1.31]}).to_csv(claims / "tab_ledger.csv", index=False)
    pd.DataFrame({"check": ["asr_reaches_one", "whitebox_vs_transfer", "whitebox_vs_transfer"],
                  "defense": ["SEM", "SEM", "SEM"], "status": ["pass", "pass", "fail"]}
                 ).to_csv(claims / "tab_checklist.csv", index=False)
    (claims / "metrics.json").write_text(json.dumps({"created_utc": "2026-11-28T09:00:00Z",
                                                     "host": {"cpu_capability": "AVX2"}, "metrics": {}}))
    (claims / "fig_ledger.png").write_bytes(b"png")


def test_block_shows_the_ledger_checklist_and_what_is_missing(tmp_path):
    _outputs(tmp_path)
    text = readme.block(tmp_path)
    assert "| F is more robust than G | **supported** | G > F: F/G distortion ratio 1.48 [1.11, 2.16], n 90" in text
    assert "2026-11-28, AVX2, `outputs/07_claims/laptop`" in text
    assert "](outputs/07_claims/laptop/fig_ledger.png)" in text
    assert "No fig_fig4.png in `outputs/03_whitebox_transfer/laptop/` yet" in text  # said, not skipped
    assert "| asr_reaches_one | pass |" in text and "| whitebox_vs_transfer | fail |" in text  # any failing row fails
    assert "Robust accuracy" not in text  # no 06b run: no table


def test_block_shows_both_robust_accuracy_tables_with_their_budgets(tmp_path):
    _outputs(tmp_path)
    adaptive = tmp_path / "outputs" / "06b_adaptive" / "laptop"
    adaptive.mkdir(parents=True)
    row = {"label": "SEM", "norm": "linf", "eps": 4 / 255, "clean": 80.0, "clean_lo": 71.0, "clean_hi": 87.3,
           "robust": 22.0, "robust_lo": 15.5, "robust_hi": 29.6, "images": 150}
    pd.DataFrame([row]).to_csv(adaptive / "tab_robust_accuracy.csv", index=False)
    (adaptive / "metrics.json").write_text(json.dumps({"created_utc": "2026-11-29T07:00:00Z",
                                                       "host": {"cpu_capability": "AVX512"}, "metrics": {}}))
    text = readme.block(tmp_path)
    assert "| SEM | linf | 4/255 | 80.0 [71.0, 87.3] | 22.0 [15.5, 29.6] | 150 |" in text
    assert "images per row in the table; 2026-11-29" in text  # not the notebook's image count: the table's own
    assert "plateau" not in text  # no STRONGEST run: no second table
    pd.DataFrame([{**row, "steps": 800, "eot": 32}]).to_csv(adaptive / "tab_strongest.csv", index=False)
    text = readme.block(tmp_path)
    assert "| SEM | linf | 4/255 | 800 x 32 | 80.0 [71.0, 87.3] | 22.0 [15.5, 29.6] | 150 |" in text
    assert "**At the plateau's budget**" in text and "table; 2026-11-29, AVX512, `outputs/06b_adaptive/laptop`" in text


def test_update_rewrites_only_the_block_and_is_idempotent(tmp_path):
    _outputs(tmp_path)
    doc = tmp_path / "README.md"
    doc.write_text(f"# title\nintro\n{readme.BEGIN}\nold text\n{readme.END}\nrest\n")
    assert readme.update(doc, tmp_path) is True
    text = doc.read_text()
    assert text.startswith("# title\nintro\n") and text.endswith(f"{readme.END}\nrest\n") and "old text" not in text
    assert "**supported**" in text
    assert readme.update(doc, tmp_path) is False and doc.read_text() == text


@pytest.mark.parametrize("body", ["no markers\n", f"{readme.END}\n{readme.BEGIN}\n", f"{readme.BEGIN}\n{readme.BEGIN}\n"
                                                                                     f"{readme.END}\n"])
def test_a_readme_without_its_markers_is_one_clear_error(tmp_path, body):
    doc = tmp_path / "README.md"
    doc.write_text(body)
    with pytest.raises(ValueError, match="needs one '<!-- results:begin -->' line followed by one"):
        readme.update(doc, tmp_path)
    assert doc.read_text() == body


def test_the_committed_readme_block_is_current():
    text = (ROOT / "README.md").read_text()
    inside = text.split(readme.BEGIN)[1].split(readme.END)[0]
    assert inside == "\n" + readme.block(ROOT), "README results block is stale: python -m semlib.readme"
