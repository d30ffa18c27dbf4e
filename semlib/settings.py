"""Settings: the one place that says what a valid number is and how a settings dataclass is
built from a parameter mapping. A leaf module: it imports nothing from semlib, so every other
module (params, runner, specs, curves, smoothing, attacks) can use it without a cycle."""
from __future__ import annotations

import math
import numbers
from dataclasses import fields
from typing import Any


def is_real(v: Any) -> bool:
    """A real number (int, float, numpy scalar), not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def is_int(v: Any) -> bool:
    """An integer, not a bool."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_finite(v: Any) -> bool:
    """A real number that is neither NaN nor infinite."""
    return is_real(v) and math.isfinite(v)


def check_count(name: str, value: Any, minimum: int = 1) -> None:
    """Refuse a setting that is not an integer >= ``minimum`` (bools and strings included)."""
    if not (is_int(value) and value >= minimum):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_real(name: str, value: Any, lo: float = 0.0, *, open_lo: bool = False, hi: float | None = None) -> None:
    """Refuse a setting that is not a finite number in ``[lo, hi]`` (``(lo, hi]`` with ``open_lo``)."""
    ok = is_finite(value) and (value > lo if open_lo else value >= lo) and (hi is None or value <= hi)
    if not ok:
        where = f"{'>' if open_lo else '>='} {lo:g}" + ("" if hi is None else f" and <= {hi:g}")
        raise ValueError(f"{name} must be a finite number {where}, got {value!r}")


def from_dict(cls: type, raw: dict[str, Any] | None, source: str):
    """A settings dataclass from a parameter mapping; an unknown key is one clear error."""
    raw = dict(raw or {})
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ValueError(f"{source}: unknown setting(s) {unknown}; allowed: {allowed}")
    return cls(**raw)
