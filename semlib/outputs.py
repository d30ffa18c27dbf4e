"""Where a notebook's results go: ``outputs/<notebook>/<preset>/`` with ``fig_<topic>.png|pdf``,
``tab_<topic>.csv`` and ``metrics.json`` (results plus provenance). Every write is atomic.

A pipeline run (:class:`StagedRun`, used by :mod:`semlib.pipeline`) never writes into
``<preset>/`` itself: it writes a sibling ``<preset>.running-XXXX/`` and swaps it in only when
the notebook finished. A run that fails (or is interrupted) leaves ``<preset>/`` exactly as the
last finished run left it and its own files in ``<preset>.failed/`` with an ``UNFINISHED.txt``
marker saying what stopped it. Inside such a run :class:`OutputDir` writes to the staging
folder (told through ``SEMLIB_OUTPUT_DIR``); run interactively it writes to ``<preset>/``.
"""
from __future__ import annotations

import contextlib
import ctypes
import datetime
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from . import artifacts, cache


def project_root(start: str | Path | None = None) -> Path:
    """The semlib project folder (holding ``pyproject.toml`` and ``params/``), searched upwards
    from ``start`` (default: the current directory), so notebooks run from ``notebooks/`` too."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "params").is_dir():
            return d
    raise FileNotFoundError(f"no semlib project (pyproject.toml + params/) in {here} or above; "
                            f"run from inside the repository")


def zoo_digest(zoo_dir: str | Path) -> str | None:
    """One sha256 over the weights' hashes its cards record (sub-models and baselines) of the zoo
    in ``zoo_dir``: results made with other weights carry another digest. None: no cards."""
    lines = []
    for card in sorted(Path(zoo_dir).glob("*.json")) + sorted(Path(zoo_dir).glob("baselines/*.json")):
        try:
            lines.append(f"{card.relative_to(zoo_dir)}:{json.loads(card.read_text()).get('sha256')}")
        except (OSError, ValueError, AttributeError):
            lines.append(f"{card.relative_to(zoo_dir)}:unreadable")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest() if lines else None


def params_zoo_dir(params: dict[str, Any]) -> Path | None:
    """The zoo folder a notebook's parameters point at (``ZOO_DIR``, else ``zoo/<ZOO or PRESET>``)."""
    name = params.get("ZOO") or params.get("PRESET")
    if params.get("ZOO_DIR"):
        return Path(params["ZOO_DIR"])
    try:
        return project_root() / "zoo" / name if name else None
    except FileNotFoundError:
        return None


def table_csv(df: pd.DataFrame) -> str:
    """A table as the outputs store it: CSV, no index, floats to 6 significant digits."""
    return df.to_csv(index=False, float_format="%.6g")


def as_stored(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` as a reader of its saved CSV gets it back, so a figure drawn in the notebook and
    one redrawn from the committed table (``make figures``) are the same bytes."""
    return pd.read_csv(io.StringIO(table_csv(df)))


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
        staged = staging_dir(notebook, preset)
        self.path = staged or Path(root or project_root()) / "outputs" / notebook / preset
        self.path.mkdir(parents=True, exist_ok=True)
        self.started, self.started_at = time.perf_counter(), time.time()
        self.files: list[str] = []

    def save_figure(self, fig, topic: str, dpi: int = 150) -> Path:
        """Save ``fig`` as ``fig_<topic>.png`` and ``.pdf``; returns the PNG path."""
        for ext in ("png", "pdf"):
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=dpi, bbox_inches="tight",  # no date: the same figure, the same bytes
                        metadata={"CreationDate": None} if ext == "pdf" else None)
            artifacts.atomic_write_bytes(self.path / f"fig_{topic}.{ext}", buf.getvalue())
            self.files.append(f"fig_{topic}.{ext}")
        return self.path / f"fig_{topic}.png"

    def save_table(self, df: pd.DataFrame, topic: str) -> Path:
        path = self.path / f"tab_{topic}.csv"
        artifacts.atomic_write_text(path, table_csv(df))
        self.files.append(path.name)
        return path

    def write_metrics(self, metrics: dict[str, Any], params: dict[str, Any] | None = None,
                      seeds: dict[str, int] | None = None, data_hashes: dict[str, str] | None = None) -> Path:
        """``metrics.json``: the results plus provenance (git SHA, packages, params, seeds,
        data hashes, wall time of the run and how much of it the cache saved)."""
        zoo_dir = params_zoo_dir(params or {})
        record = artifacts.provenance(params, notebook=self.notebook, preset=self.preset, seeds=seeds or {},
                               data_sha256=data_hashes or {}, zoo_sha256=zoo_digest(zoo_dir) if zoo_dir else None,
                               wall_seconds=round(time.perf_counter() - self.started, 1),
                               cache_reuse=cache.reuse_since(self.started_at), files=sorted(set(self.files)))
        record["metrics"] = metrics
        path = self.path / "metrics.json"
        artifacts.write_json(path, record)
        return path


STAGING_ENV = "SEMLIB_OUTPUT_DIR"  # the folder a pipeline run writes into ...
STAGING_FOR_ENV = "SEMLIB_OUTPUT_FOR"  # ... and the "<notebook>/<preset>" it is for
FAILED_MARKER = "UNFINISHED.txt"


def staging_dir(notebook: str, preset: str) -> Path | None:
    """The staging folder of the pipeline run of ``notebook`` on ``preset`` this process is
    part of, or None (interactive use: write to ``outputs/<notebook>/<preset>/``)."""
    path = os.environ.get(STAGING_ENV)
    if path and os.environ.get(STAGING_FOR_ENV) == f"{notebook}/{preset}":
        return Path(path)
    return None


class StagedRun:
    """One pipeline run of a notebook on a preset, published only when it finishes.

    ``with StagedRun(nb, preset, root) as run:`` creates ``outputs/<nb>/<preset>.running-XXXX/``
    (``run.path``); leaving the block normally swaps it in as ``outputs/<nb>/<preset>/``
    (atomic exchange where the OS has one, else two renames; the old folder is kept until the
    new one is in place, then removed) and removes a stale ``<preset>.failed/``. Leaving it by
    an exception moves the staging folder to ``<preset>.failed/`` with an ``UNFINISHED.txt``
    marker and leaves ``<preset>/`` untouched.

    Parameters
    ----------
    notebook : notebook stem, e.g. ``"03_whitebox_transfer"``
    preset : ``smoke``, ``laptop`` or ``paper``
    root : project root (holding ``outputs/``); found from the current directory by default
    """

    def __init__(self, notebook: str, preset: str, root: str | Path | None = None):
        self.notebook, self.preset = notebook, preset
        self.final = Path(root or project_root()) / "outputs" / notebook / preset
        self.failed = self.final.with_name(f"{preset}.failed")
        self.previous = self.final.with_name(f"{preset}.previous")
        self.path: Path | None = None
        self.error: BaseException | None = None  # what stopped a failed run

    def env(self) -> dict[str, str]:
        """Environment that points :class:`OutputDir` (in the notebook's kernel) at ``path``."""
        return {STAGING_ENV: str(self.path), STAGING_FOR_ENV: f"{self.notebook}/{self.preset}"}

    def __enter__(self) -> "StagedRun":
        self.final.parent.mkdir(parents=True, exist_ok=True)
        if self.previous.exists():  # a swap was cut between its two renames
            if self.final.exists():
                shutil.rmtree(self.previous)
            else:
                os.rename(self.previous, self.final)
        self.path = Path(tempfile.mkdtemp(prefix=f"{self.preset}.running-", dir=self.final.parent))
        os.chmod(self.path, 0o777 & ~artifacts.current_umask())  # mkdtemp makes 0700
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self._publish()
        else:
            self._mark_failed(exc)
        return False

    def _publish(self) -> None:
        if not self.final.exists():
            os.rename(self.path, self.final)
        elif _exchange(self.path, self.final):  # the old run now sits at self.path
            shutil.rmtree(self.path)
        else:
            os.rename(self.final, self.previous)
            try:
                os.rename(self.path, self.final)
            except BaseException:
                os.rename(self.previous, self.final)
                raise
            shutil.rmtree(self.previous)
        if self.failed.exists():
            shutil.rmtree(self.failed)

    def _mark_failed(self, exc: BaseException) -> None:
        self.error = exc
        if self.failed.exists():
            shutil.rmtree(self.failed)
        when = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        artifacts.atomic_write_text(self.path / FAILED_MARKER, (
            f"UNFINISHED: this run of {self.notebook} on preset {self.preset} stopped at {when} with "
            f"{error_line(exc)}\n"
            f"Its files are incomplete and were not published; {self.final.name}/ beside this folder still holds "
            f"the last finished run (if there was one).\n"
            f"The executed notebook here shows where it stopped. Rerun with: python -m semlib.pipeline "
            f"--preset {self.preset} notebooks/{self.notebook}.ipynb\n"))
        os.rename(self.path, self.failed)


def error_line(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` on one line (a notebook's error as the kernel raised it)."""
    name = getattr(exc, "ename", None) or type(exc).__name__
    value = getattr(exc, "evalue", None)
    value = str(exc) if value is None else str(value)
    first = value.strip().splitlines()[0] if value.strip() else ""
    return f"{name}: {first}" if first else name


@contextlib.contextmanager
def environ(updates: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (a kernel started inside inherits them)."""
    saved = {k: os.environ.get(k) for k in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
