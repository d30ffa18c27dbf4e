"""Where a notebook's results go: ``outputs/<notebook>/<preset>/`` with ``fig_<topic>.png|pdf``,
``tab_<topic>.csv`` and ``metrics.json`` (results plus provenance). Every write is atomic."""
from __future__ import annotations

import io as _io
import time
from pathlib import Path
from typing import Any

import pandas as pd

from . import io


def project_root(start: str | Path | None = None) -> Path:
    """The semlib project folder (holding ``pyproject.toml`` and ``params/``), searched upwards
    from ``start`` (default: the current directory), so notebooks run from ``notebooks/`` too."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "params").is_dir():
            return d
    raise FileNotFoundError(f"no semlib project (pyproject.toml + params/) in {here} or above; "
                            f"run from inside the repository")


class OutputDir:
    """The output folder of one notebook run on one preset.

    Parameters
    ----------
    notebook : str
        Notebook stem, e.g. ``"01_zoo"``.
    preset : str
        ``smoke``, ``laptop`` or ``paper``; presets never share a folder.
    root : path, optional
        Project root (the folder holding ``outputs/``); found from the current directory by default.
    """

    def __init__(self, notebook: str, preset: str, root: str | Path | None = None):
        self.notebook, self.preset = notebook, preset
        self.path = Path(root or project_root()) / "outputs" / notebook / preset
        self.path.mkdir(parents=True, exist_ok=True)
        self.started = time.perf_counter()
        self.files: list[str] = []

    def save_figure(self, fig, topic: str, dpi: int = 150) -> Path:
        """Save ``fig`` as ``fig_<topic>.png`` and ``.pdf``; returns the PNG path."""
        for ext in ("png", "pdf"):
            buf = _io.BytesIO()
            fig.savefig(buf, format=ext, dpi=dpi, bbox_inches="tight")
            io.atomic_write_bytes(self.path / f"fig_{topic}.{ext}", buf.getvalue())
            self.files.append(f"fig_{topic}.{ext}")
        return self.path / f"fig_{topic}.png"

    def save_table(self, df: pd.DataFrame, topic: str) -> Path:
        path = self.path / f"tab_{topic}.csv"
        io.atomic_write_text(path, df.to_csv(index=False, float_format="%.6g"))
        self.files.append(path.name)
        return path

    def write_metrics(self, metrics: dict[str, Any], params: dict[str, Any] | None = None,
                      seeds: dict[str, int] | None = None, data_hashes: dict[str, str] | None = None) -> Path:
        """``metrics.json``: the results plus provenance (git SHA, packages, params, seeds,
        data hashes, wall time of the run)."""
        record = io.provenance(params, notebook=self.notebook, preset=self.preset, seeds=seeds or {},
                               data_sha256=data_hashes or {},
                               wall_seconds=round(time.perf_counter() - self.started, 1),
                               files=sorted(set(self.files)))
        record["metrics"] = metrics
        path = self.path / "metrics.json"
        io.write_json(path, record)
        return path
