"""Every notebook runs end to end on the smoke preset (papermill); `make test` then checks the
executed notebooks with nbval. Marked slow: it trains the smoke zoo (about a minute)."""
import json
from pathlib import Path

import pandas as pd
import pytest

from semlib.pipeline import run_notebook

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _metrics(nb: str) -> dict:
    return json.loads((ROOT / "outputs" / nb / "smoke" / "metrics.json").read_text())


def test_00_data_runs_on_smoke(data_dir):
    out = run_notebook(ROOT / "notebooks" / "00_data.ipynb", "smoke")
    assert out.is_file()
    m = _metrics("00_data")
    assert m["metrics"]["train"]["images"] == 50_000 and m["metrics"]["test"]["jpeg_fallback"] == 25
    assert m["metrics"]["train"]["channel_mean"] == pytest.approx([0.4914, 0.4822, 0.4465], abs=1e-3)
    for key in ("git_sha", "packages", "params", "data_sha256", "wall_seconds"):
        assert key in m
    bal = pd.read_csv(out.parent / "tab_class_balance.csv")
    assert bal["count"].sum() == 60_000
    for f in ("fig_class_balance.png", "fig_image_grid.pdf", "fig_jpeg_fallback.png"):
        assert (out.parent / f).stat().st_size > 1000


def test_01_zoo_runs_on_smoke(data_dir):
    out = run_notebook(ROOT / "notebooks" / "01_zoo.ipynb", "smoke")
    t1 = pd.read_csv(out.parent / "tab_table1.csv")
    assert len(t1) == 9 and set(t1.columns) >= {"arch", "family", "clean", "aca_0.25"}
    assert t1.clean.between(0, 100).all()
    zoo = pd.read_csv(out.parent / "tab_zoo.csv")
    assert (zoo.arch == "wrn28_10").sum() == 4  # sigmas 0, 0.25 + the single-architecture 0.12, 0.5
    m = _metrics("01_zoo")
    assert m["metrics"]["submodels"] == len(zoo)
    assert set(m["data_sha256"]) == {"train", "test"}
    assert m["seeds"] == {"zoo_seed": 0} and m["params"]["PRESET"] == "smoke"
    assert m["packages"]["torch"].startswith("2.13.0") and m["wall_seconds"] >= 0
    assert (out.parent / "fig_table1.png").stat().st_size > 1000
