"""The package's shape: no import cycle among semlib's modules, and no import tucked inside a
function to dodge one (the redesign issue: "a house the next researcher can live in")."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "semlib"


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(mods: dict[str, Path]) -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    """Edges module -> semlib modules it imports, and the imports made inside a function."""
    edges, nested = {m: set() for m in mods}, []
    for m, p in mods.items():
        tree = ast.parse(p.read_text())
        top = {id(n) for n in tree.body}
        package = m.split(".") if p.name == "__init__.py" else m.split(".")[:-1]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                    if node.level else node.module
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for t in {n for n in names if n in mods and n != m}:
                edges[m].add(t)
                if id(node) not in top:
                    nested.append((m, t))
    return edges, nested


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(u: str, path: list[str]) -> list[str] | None:
        state[u] = 1
        for v in sorted(edges[u]):
            if state.get(v) == 1:
                return path[path.index(v):] + [u, v] if v in path else [u, v]
            if not state.get(v) and (found := visit(v, path + [u])):
                return found
        state[u] = 2
        return None

    for u in sorted(edges):
        if not state.get(u) and (found := visit(u, [])):
            return found
    return None


def test_the_checker_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_and_no_nested_import():
    edges, nested = _imports(_modules())
    assert sum(len(v) for v in edges.values()) > 30  # the parser sees the real graph
    assert _cycle(edges) is None, f"import cycle: {' -> '.join(_cycle(edges))}"
    assert not nested, f"semlib imports made inside functions: {nested}"


def test_one_concept_per_module_stays_small():
    """The redesign's size rule: no semlib module over 300 lines (split by concept, not by count)."""
    sizes = {m: len(p.read_text().splitlines()) for m, p in _modules().items()}
    assert len(sizes) > 30
    assert not {m: n for m, n in sizes.items() if n > 300}, sorted(sizes.items(), key=lambda kv: -kv[1])[:5]
