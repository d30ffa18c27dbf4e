"""YAML read safely: a SafeLoader bounded against alias bombs, huge files and deep nesting,
for params files and zoo specs. Every refusal is one ``ValueError`` line naming the file."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_ALIASES = 32  # YAML aliases (*name) a params file may use: enough for sharing, too few for a bomb
MAX_NODES = 100_000  # YAML nodes after expanding aliases
MAX_BYTES = 1 << 20  # params files are small


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader that refuses more than ``MAX_ALIASES`` aliases while composing (billion laughs)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases = getattr(self, "aliases", 0) + 1
            if self.aliases > MAX_ALIASES:
                raise _Refused(f"uses more than {MAX_ALIASES} YAML aliases (*name); write the values out")
        return super().compose_node(parent, index)


class _Refused(Exception):
    """A YAML document refused before it is built (message without the file name)."""


def _expanded_size(node: yaml.Node) -> int:
    """Nodes in ``node`` with every alias expanded; refuses recursive documents."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(n: yaml.Node) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        if id(n) in visiting:
            raise _Refused("is a recursive YAML document (an alias inside its own anchor)")
        visiting.add(id(n))
        children = [c for pair in n.value for c in pair] if isinstance(n, yaml.MappingNode) else (
            n.value if isinstance(n, yaml.SequenceNode) else [])
        total = 1 + sum(size(c) for c in children)
        visiting.discard(id(n))
        sizes[id(n)] = total
        if total > MAX_NODES:
            raise _Refused(f"expands to more than {MAX_NODES} YAML nodes through aliases; write the values out")
        return total

    return size(node)


def load_yaml(path: str | Path) -> Any:
    """A YAML file through ``SafeLoader``, bounded: one-line ``ValueError`` for syntax errors,
    files over 1 MiB, more than ``MAX_ALIASES`` aliases, alias expansion beyond ``MAX_NODES``
    nodes, recursive anchors and nesting too deep."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ValueError(f"{path} is {size} bytes; a settings file must be under {MAX_BYTES} bytes")
    loader = _BoundedLoader(path.read_text())
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node)
    except _Refused as e:
        raise ValueError(f"{path} {e}") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    except RecursionError:
        raise ValueError(f"{path} is nested too deeply; params are a flat mapping of NAME: value") from None
    finally:
        loader.dispose()
