"""`make figures` (semlib.figures): every figure of notebooks 00-07 is drawn from the tables its
notebook saves, so it can be redrawn from committed outputs alone; the same tables give the same
bytes; a table of an older format or a missing one is named, not a crash."""
import json
from pathlib import Path

import numpy as np
import pandas as pd

from semlib import figures
from semlib.outputs import OutputDir
from semlib.tables import asr_table

ROOT = Path(__file__).resolve().parent.parent


def _rows(seed=0):
    rng = np.random.default_rng(seed)
    return pd.concat([pd.DataFrame({"distortion": rng.exponential(0.02 * (1 + i), 12), "label": label,
                                    "scenario": label, "attack": "bim", "goal": goal, "variant": "sem"})
                      for i, label in enumerate(["RSE", "ADP", "F", "G", "H", "I"])
                      for goal in ("untargeted", "targeted")], ignore_index=True)


def test_every_notebook_figure_but_the_image_grids_comes_from_the_registry():
    for nb in sorted((ROOT / "notebooks").glob("0*.ipynb")):
        cells = ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
        direct = [line for c in cells for line in c.splitlines() if "save_figure(" in line]
        drawn_from_images = ("'image_grid'", "'jpeg_fallback'", "'gallery'")  # pictures, not tables
        assert all(any(name in line for name in drawn_from_images) for line in direct), (nb.name, direct)
        assert any("figures.save(" in c for c in cells) == any(f.notebook == nb.stem for f in figures.FIGURES), nb.name


def test_figures_are_redrawn_from_saved_tables_byte_for_byte(tmp_path):
    params = {"PRESET": "smoke", "STUDY": {"norm": "linf"}, "GOALS": ["untargeted", "targeted"]}
    out = OutputDir("02_baselines", "smoke", root=tmp_path)
    tab = asr_table(_rows(), np.linspace(0, 0.1, 21))
    tab["asr"] = (tab.asr + 3e-4 * np.sin(np.arange(len(tab)))).clip(0, 1)  # more digits than a saved table keeps
    out.save_table(tab, "asr")
    figures.save(out, params, close=True, asr=tab)
    out.write_metrics({}, params=params)
    folder = tmp_path / "outputs" / "02_baselines" / "smoke"
    assert {p.name for p in folder.glob("fig_*")} == {"fig_fig3.png", "fig_fig3.pdf"}
    in_notebook = {p.name: p.read_bytes() for p in folder.glob("fig_*")}
    for p in folder.glob("fig_*"):
        p.unlink()
    saved, left = figures.render("smoke", root=tmp_path)
    assert [p.name for p in saved] == ["fig_fig3.png"] and left == []
    first = {p.name: p.read_bytes() for p in folder.glob("fig_*")}
    assert first == in_notebook  # the notebook's figure is the one make figures redraws
    figures.render("smoke", root=tmp_path)
    assert {p.name: p.read_bytes() for p in folder.glob("fig_*")} == first  # PDFs carry no date
    tab.drop(columns="goal").to_csv(folder / "tab_asr.csv", index=False)  # an older table format
    saved, left = figures.render("smoke", root=tmp_path)
    assert saved == [] and len(left) == 1 and left[0].startswith("02_baselines/fig3 (KeyError")
    (folder / "tab_asr.csv").unlink()
    assert figures.render("smoke", root=tmp_path) == ([], ["02_baselines/fig3"])
