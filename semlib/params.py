"""Notebook parameters: ``params/<notebook>/<preset>.yaml``, checked against the notebook's
``parameters`` cell so a misspelled key fails loudly instead of being silently ignored."""
from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import yaml

PRESETS = ("smoke", "laptop", "paper")

_optional_str = (lambda v: v is None or isinstance(v, str), "a path or name (string) or null")


def settings_from_dict(cls: type, raw: dict[str, Any] | None, source: str):
    """A settings dataclass from a parameter mapping; an unknown key is one clear error."""
    from dataclasses import fields

    raw = dict(raw or {})
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ValueError(f"{source}: unknown setting(s) {unknown}; allowed: {allowed}")
    return cls(**raw)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_positive = (lambda v: _number(v) and v > 0, "a number > 0 (pixels in [0, 1])")


def _attacks() -> tuple[str, ...]:
    from .attacks import ATTACKS

    return tuple(ATTACKS)


def _study(v: Any) -> bool:
    from .study import StudyConfig

    if not isinstance(v, dict):
        return False
    StudyConfig.from_dict(v, "STUDY")  # raises naming the bad setting
    return True


def _executor(v: Any) -> bool:
    from .runner import Executor

    if not isinstance(v, dict):
        return False
    Executor.from_dict(v, "EXECUTOR")  # raises naming the bad setting
    return True


def _cert(v: Any) -> bool:
    return (isinstance(v, dict) and set(v) == {"sigma", "n0", "n", "alpha"} and _number(v["sigma"]) and v["sigma"] > 0
            and all(isinstance(v[k], int) and v[k] >= 1 for k in ("n0", "n")) and _number(v["alpha"])
            and 0 < v["alpha"] < 1)
# value rules for parameters shared by notebooks: (check, what a valid value is)
RULES: dict[str, tuple] = {
    "PRESET": (lambda v: v in PRESETS, f"one of {', '.join(PRESETS)}"),
    "DATA_DIR": _optional_str,
    "ZOO": _optional_str,
    "ZOO_DIR": _optional_str,
    "THRESHOLD": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1,
                  "a fraction in [0, 1]"),
    "N_GRID": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 200, "an integer in 1..200"),
    "RETRAIN": (lambda v: isinstance(v, bool), "true or false"),
    "STUDY": (lambda v: _study(v), "a mapping of semlib.study.StudyConfig settings"),
    "ATTACKS": (lambda v: isinstance(v, list) and len(v) > 0 and all(a in _attacks() for a in v),
                "a non-empty list of attacks among bim, mim, pgd, nes, spsa, apgd"),
    "GOALS": (lambda v: isinstance(v, list) and len(v) > 0 and all(g in ("untargeted", "targeted") for g in v),
              "a non-empty list of goals among untargeted, targeted"),
    "EPS_ZOOM": _positive,
    "EPS_SMALL": _positive,
    "EPS_MAX": _positive,
    "MARGIN": (lambda v: _number(v) and 0 <= v < 1, "a fraction in [0, 1)"),
    "CERT": (lambda v: _cert(v), "a mapping with sigma (> 0), n0, n (integers >= 1) and alpha in (0, 1)"),
    "N_BOOT": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 100, "an integer >= 100"),
    "EXECUTOR": (lambda v: _executor(v), "a mapping of semlib.runner.Executor settings, e.g. {kind: ray}"),
    "N_IMAGES": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "SEED": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
}


def check_values(params: dict[str, Any], source: str = "parameters") -> None:
    """One clear error for the first parameter whose value is not allowed."""
    for key, value in params.items():
        if key in RULES:
            ok, what = RULES[key]
            try:
                good = ok(value)
            except ValueError as e:  # a structured parameter names its own bad field
                raise ValueError(f"{source}: {e}") from None
            if not good:
                raise ValueError(f"{source}: {key} = {value!r} is not allowed; expected {what}")


def notebook_parameters(notebook: str | Path) -> dict[str, Any]:
    """Names and default values assigned in the notebook's cell tagged ``parameters``."""
    nb = json.loads(Path(notebook).read_text())
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            src = "".join(cell["source"])
            out = {}
            for node in ast.parse(src).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    out[node.targets[0].id] = ast.literal_eval(node.value)
            return out
    raise ValueError(f"{notebook} has no cell tagged 'parameters'")


def load_params(notebook: str, preset: str, root: str | Path = ".") -> dict[str, Any]:
    """The parameters of ``notebook`` (a stem like ``01_zoo``) for ``preset``, validated."""
    root = Path(root)
    path = root / "params" / notebook / f"{preset}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in (root / "params" / notebook).glob("*.yaml"))
        raise FileNotFoundError(f"no parameters {path}; presets for {notebook}: {have or 'none'} "
                                f"(choose one with PRESET=..., known presets: {', '.join(PRESETS)})")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(params, dict):
        raise ValueError(f"{path} must be a YAML mapping of NAME: value, got {type(params).__name__}")
    allowed = notebook_parameters(root / "notebooks" / f"{notebook}.ipynb")
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"{path}: unknown parameter(s) {unknown}; the notebook's parameters are {sorted(allowed)}")
    check_values({**params, "PRESET": preset}, str(path))
    return params
