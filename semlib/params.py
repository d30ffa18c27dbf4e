"""Notebook parameters: ``params/<preset>.yaml`` (the settings every notebook of a preset
shares) plus ``params/<notebook>/<preset>.yaml`` (the notebook's own), checked against the
notebook's ``parameters`` cell so a misspelled key fails loudly instead of being silently
ignored, and a setting written in both files is refused."""
from __future__ import annotations

import ast
import decimal
import json
import math
from dataclasses import fields
from pathlib import Path
from typing import Any

from .attacks import ATTACKS
from .robust import ATTACKS as ROBUST_ATTACKS, DEFENSES
from .runner import Executor
from .settings import is_finite
from .specs import StudyConfig
from .yamlsafe import load_yaml  # noqa: F401  (re-exported: params files are read through it)

PRESETS = ("smoke", "laptop", "paper")

_optional_str = (lambda v: v is None or isinstance(v, str), "a path or name (string) or null")


_positive = (lambda v: is_finite(v) and v > 0, "a finite number > 0 (pixels in [0, 1])")


def _attacks() -> tuple[str, ...]:
    return tuple(ATTACKS)


def _study(v: Any) -> bool:
    if not isinstance(v, dict):
        return False
    defaults = {f.name: f.default for f in fields(StudyConfig)}
    for key, value in v.items():  # numbers where numbers belong, before StudyConfig compares them
        default = defaults.get(key)
        if isinstance(default, (int, float)) and not isinstance(default, bool) and not is_finite(value):
            what = "an integer" if isinstance(default, int) else "a finite number"
            raise ValueError(f"STUDY {key} = {value!r} is not allowed; expected {what}{_text_hint(value)}")
    cfg = StudyConfig.from_dict(v, "STUDY")  # raises naming the bad setting
    if cfg.eps0 > cfg.eps_max:
        raise ValueError(f"STUDY eps0 = {cfg.eps0!r} is above eps_max = {cfg.eps_max!r}: the search's first budget "
                         f"must lie inside the plotted range; lower eps0 or raise eps_max")
    return True


def _executor(v: Any) -> bool:
    if not isinstance(v, dict):
        return False
    Executor.from_dict(v, "EXECUTOR")  # raises naming the bad setting
    return True


def _cert(v: Any) -> bool:
    return (isinstance(v, dict) and set(v) == {"sigma", "n0", "n", "alpha"} and is_finite(v["sigma"]) and v["sigma"] > 0
            and all(isinstance(v[k], int) and not isinstance(v[k], bool) and v[k] >= 1 for k in ("n0", "n"))
            and is_finite(v["alpha"]) and 0 < v["alpha"] < 1)


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _some_of(values: Any, allowed) -> bool:
    """A non-empty list of names, each one of ``allowed``."""
    return isinstance(values, list) and len(values) > 0 and set(values) <= set(allowed)


def _robust(v: Any) -> bool:
    """ROBUST (06b): images, budgets [[norm, eps], ...], steps, eot, targets, defenses."""
    return (isinstance(v, dict) and set(v) - {"shard_size"} == {"images", "budgets", "steps", "eot", "targets", "defenses"}
            and all(_count(v[k]) for k in ("images", "steps", "eot", "targets")) and _count(v.get("shard_size", 1))
            and isinstance(v["budgets"], list) and len(v["budgets"]) > 0
            and all(isinstance(b, list) and len(b) == 2 and b[0] in ("linf", "l2") and is_finite(b[1]) and b[1] >= 0
                    for b in v["budgets"])
            and _some_of(v["defenses"], DEFENSES))


def _convergence(v: Any) -> bool:
    """CONVERGENCE (06b): images, eps, steps and eots (lists of distinct values), at_steps, at_eot, attacks, defenses;
    optional joint ([[steps, eot], ...], distinct pairs), plateau ([steps, eot]) and shard_size."""
    joint = v.get("joint", []) if isinstance(v, dict) else None
    plateau = v.get("plateau", [1, 1]) if isinstance(v, dict) else None
    return (isinstance(v, dict)
            and isinstance(plateau, list) and len(plateau) == 2 and all(_count(x) for x in plateau)
            and set(v) - {"shard_size", "joint", "plateau"} == {"images", "eps", "steps", "eots", "at_steps", "at_eot", "attacks",
                                                     "defenses"}
            and all(_count(v[k]) for k in ("images", "at_steps", "at_eot")) and _count(v.get("shard_size", 1))
            and isinstance(joint, list) and all(isinstance(j, list) and len(j) == 2 and all(_count(x) for x in j)
                                                for j in joint)
            and len({j[0] * j[1] for j in joint}) == len(joint)
            and is_finite(v["eps"]) and v["eps"] >= 0
            and all(isinstance(v[k], list) and len(v[k]) > 0 and all(_count(x) for x in v[k])
                    and len(set(v[k])) == len(v[k]) for k in ("steps", "eots"))
            and _some_of(v["attacks"], ROBUST_ATTACKS) and _some_of(v["defenses"], DEFENSES))


def _strongest(v: Any) -> bool:
    """STRONGEST (06b): images, eps, steps, eot, attacks, defenses; optional shard_size."""
    return (isinstance(v, dict) and set(v) - {"shard_size"} == {"images", "eps", "steps", "eot", "attacks", "defenses"}
            and all(_count(v[k]) for k in ("images", "steps", "eot")) and _count(v.get("shard_size", 1))
            and is_finite(v["eps"]) and v["eps"] >= 0
            and _some_of(v["attacks"], ROBUST_ATTACKS) and _some_of(v["defenses"], DEFENSES))


def _grid(v: Any) -> bool:
    """GRID (08): k_ranges [[k_min, k_max], ...], sigma_sets [[sigma, ...], ...], attacks, goals (lists; empty: none)."""
    return (isinstance(v, dict) and set(v) == {"k_ranges", "sigma_sets", "attacks", "goals"}
            and all(isinstance(v[k], list) for k in v)
            and all(isinstance(k, list) and len(k) == 2 and all(_count(x) for x in k) and k[0] <= k[1]
                    for k in v["k_ranges"])
            and all(isinstance(s, list) and len(s) > 0 and all(is_finite(x) and x >= 0 for x in s)
                    for s in v["sigma_sets"])
            and all(a in ("bim", "mim", "pgd", "nes", "spsa") for a in v["attacks"])
            and all(g in ("untargeted", "targeted") for g in v["goals"]))


def _gallery(v: Any) -> bool:
    """GALLERY (08): images (an integer >= 0) and curves ([[scenario, attack, goal], ...])."""
    return (isinstance(v, dict) and set(v) == {"images", "curves"} and isinstance(v["images"], int)
            and not isinstance(v["images"], bool) and v["images"] >= 0 and isinstance(v["curves"], list)
            and len(v["curves"]) > 0 and all(isinstance(c, list) and len(c) == 3 and all(isinstance(x, str) for x in c)
                                             for c in v["curves"])
            and len({c[0] for c in v["curves"]}) == len(v["curves"]))  # one curve per defense: the columns


def _text_hint(value: Any) -> str:
    """What to do about a number written as text: quoted, or an exponent without a dot
    (YAML reads ``1e-2`` as text, ``1.0e-2`` as a number)."""
    if not isinstance(value, str):
        return ""
    try:
        number = float(value)
    except ValueError:
        return ""
    if not math.isfinite(number):
        return ""
    try:
        plain = str(int(value.strip()))
    except ValueError:
        plain = format(decimal.Decimal(repr(number)), "f")
    if "e" in value.lower() and "." not in value:
        return f"; {value!r} is text to YAML (an exponent needs a dot, 1.0e-2): write {plain}"
    return f"; {value!r} is text: write {plain} without quotes"


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
    "CERT": (lambda v: _cert(v), "a mapping with sigma (finite, > 0), n0, n (integers >= 1) and alpha in (0, 1)"),
    "N_BOOT": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 100, "an integer >= 100"),
    "EXECUTOR": (lambda v: _executor(v), "a mapping of semlib.runner.Executor settings, e.g. {kind: ray}"),
    "N_IMAGES": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "SEED": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
    "OUTPUT_DIR": _optional_str,
    "ROBUST": (_robust, f"a mapping with images, steps, eot, targets (integers >= 1), budgets ([[linf or l2, eps], "
                        f"...]) and defenses (some of {', '.join(DEFENSES)}); optional shard_size (an integer >= 1)"),
    "GRID": (_grid, "a mapping with k_ranges ([[k_min, k_max], ...]), sigma_sets ([[sigma, ...], ...]), attacks "
                    "(some of bim, mim, pgd, nes, spsa) and goals (untargeted, targeted); lists may be empty"),
    "GALLERY": (_gallery, "a mapping with images (an integer >= 0) and curves ([[scenario, attack, goal], ...], "
                          "one per scenario)"),
    "CONVERGENCE": (_convergence, f"a mapping with images, at_steps, at_eot (integers >= 1), eps (>= 0), steps and "
                                  f"eots (lists of integers >= 1), attacks (some of {', '.join(ROBUST_ATTACKS)}) and "
                                  f"defenses (some of {', '.join(DEFENSES)}); optional shard_size (an integer >= 1) and "
                                  f"joint ([[steps, eot], ...], pairs of integers >= 1 with distinct products), plateau ([steps, eot])"),
    "STRONGEST": (_strongest, f"a mapping with images, steps, eot (integers >= 1), eps (>= 0), attacks (some of "
                              f"{', '.join(ROBUST_ATTACKS)}) and defenses (some of {', '.join(DEFENSES)}); optional "
                              f"shard_size (an integer >= 1)"),
}

# pairs of parameters that contradict each other: (check, message) on the merged parameters
CROSS: list[tuple] = [
    (lambda p: "EPS_ZOOM" not in p or p["EPS_ZOOM"] <= _study_eps_max(p),
     lambda p: f"EPS_ZOOM = {p['EPS_ZOOM']!r} is above STUDY eps_max = {_study_eps_max(p)!r}; the zoomed row must lie "
               f"inside the plotted range: lower EPS_ZOOM or raise STUDY eps_max"),
    (lambda p: "plateau" not in (p.get("CONVERGENCE") or {}) or _plateau_of(p) == _strongest_of(p),
     lambda p: f"CONVERGENCE plateau (budget, eps, attacks) {_plateau_of(p)} is not STRONGEST's {_strongest_of(p)}; "
               f"the plateau check is about the STRONGEST budget: make them the same"),
]


def _plateau_of(p: dict[str, Any]) -> tuple:
    c = p["CONVERGENCE"]
    return list(c["plateau"]), c["eps"], c["attacks"]


def _strongest_of(p: dict[str, Any]) -> tuple | None:
    s = p.get("STRONGEST")
    return ([s["steps"], s["eot"]], s["eps"], s["attacks"]) if s else None


def _study_eps_max(p: dict[str, Any]) -> float:
    return (p.get("STUDY") or {}).get("eps_max", StudyConfig.eps_max)


def check_values(params: dict[str, Any], source: str = "parameters") -> None:
    """One clear error for the first parameter whose value is not allowed, then for the first
    pair that contradicts itself (e.g. ``EPS_ZOOM`` above STUDY ``eps_max``).

    Parameters
    ----------
    params : NAME: value
    source : where they come from (the params file), named in every error
    """
    for key, value in params.items():
        if key in RULES:
            ok, what = RULES[key]
            try:
                good = ok(value)
            except ValueError as e:  # a structured parameter names its own bad field
                raise ValueError(f"{source}: {e}") from None
            if not good:
                raise ValueError(f"{source}: {key} = {_short(value)} is not allowed; "
                                 f"expected {what}{_text_hint(value)}")
    for ok, message in CROSS:
        if not ok(params):
            raise ValueError(f"{source}: {message(params)}")


def _short(value: Any, limit: int = 200) -> str:
    """``repr(value)`` cut to ``limit`` characters (errors stay one short line)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


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


def _mapping(path: Path) -> dict[str, Any]:
    params = load_yaml(path) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path} must be a YAML mapping of NAME: value, got {type(params).__name__}")
    bad_keys = [k for k in params if not isinstance(k, str)]
    if bad_keys:
        raise ValueError(f"{path}: parameter names must be text (NAME: value), got {_short(bad_keys)}")
    return params


def load_params(notebook: str, preset: str, root: str | Path = ".") -> dict[str, Any]:
    """The parameters of ``notebook`` (a stem like ``01_zoo``) for ``preset``, validated.

    Two files: ``params/<preset>.yaml`` holds the settings every notebook shares (``ZOO``,
    ``THRESHOLD``, ``STUDY``, ...; each notebook takes those its parameters cell declares), and
    ``params/<notebook>/<preset>.yaml`` what is the notebook's own. A name set in both is an
    error: each setting lives in one place, so two figures cannot drift apart."""
    root = Path(root)
    path = root / "params" / notebook / f"{preset}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in (root / "params" / notebook).glob("*.yaml"))
        raise FileNotFoundError(f"no parameters {path}; presets for {notebook}: {have or 'none'} "
                                f"(choose one with PRESET=..., known presets: {', '.join(PRESETS)})")
    params = _mapping(path)
    shared_path = root / "params" / f"{preset}.yaml"
    shared = _mapping(shared_path) if shared_path.is_file() else {}
    twice = sorted(set(params) & set(shared))
    if twice:
        raise ValueError(f"{path}: {twice} also set in {shared_path}; a setting lives in one place: remove it "
                         f"from one of the two")
    nb_file = root / "notebooks" / f"{notebook}.ipynb"
    if not nb_file.is_file():
        raise FileNotFoundError(f"no notebook {nb_file} for the parameters {path}; notebooks live in notebooks/")
    allowed = notebook_parameters(nb_file)
    params = {**{k: v for k, v in shared.items() if k in allowed}, **params}
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"{path}: unknown parameter(s) {unknown}; the notebook's parameters are {sorted(allowed)}")
    check_values({**allowed, **params, "PRESET": preset}, str(path))  # defaults too: cross-checks see every value
    return params
