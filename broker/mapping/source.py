"""Reading a mapping file: YAML composed safely, its version, and the line of each rule.

``yaml.SafeLoader`` builds plain data only (no object construction, no code);
the composed nodes give every rule's line so errors can say ``orders.yaml:73``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from broker.errors import ConfigError

__all__ = ["read_mapping_bytes", "read_mapping_file", "read_mapping_source", "rule_lines"]


def read_mapping_file(path: Path) -> tuple[object, str]:
    """A mapping file's YAML data and its version (a short sha256 of its bytes)."""
    data, version, _ = read_mapping_source(path)
    return data, version


def read_mapping_source(path: Path) -> tuple[object, str, dict[str, int]]:
    """A mapping file's YAML data, its version and the line of each rule (:func:`rule_lines`)."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(str(path), f"cannot read the mapping file: {e.strerror}") from e
    return read_mapping_bytes(path.name, raw)


def read_mapping_bytes(name: str, raw: bytes) -> tuple[object, str, dict[str, int]]:
    """:func:`read_mapping_source` for a file's content (a published version's file).

    The text is composed once with ``yaml.SafeLoader`` (plain data only, no
    object construction) and the data built from those nodes.
    """
    try:
        loader = yaml.SafeLoader(raw.decode("utf-8"))
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except UnicodeDecodeError as e:
        raise ConfigError(name, f"not UTF-8 text (byte {e.start})") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(name, f"invalid YAML: {where}{problem}") from e
    return data, hashlib.sha256(raw).hexdigest()[:12], rule_lines(node)


def rule_lines(node: yaml.Node | None) -> dict[str, int]:
    """Rule name → 1-based line of its key (or list item) in composed YAML.

    Names are those errors use: ``attributes.X.Y``, ``tables.t.default``,
    ``message_types.ORM^O01``, ``order_control.NW/SC``, ``order_key[2]``, and
    ``attributes.X.path[1]`` for the items of a list.
    """
    lines: dict[str, int] = {}
    seen: set[int] = set()  # an alias is walked once (a recursive one would never end)

    def walk(node: yaml.Node, name: str) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    child = f"{name}.{key.value}" if name else str(key.value)
                    lines[child] = key.start_mark.line + 1
                    walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value, 1):
                lines[f"{name}[{index}]"] = item.start_mark.line + 1
                walk(item, f"{name}[{index}]")

    if node is not None:
        walk(node, "")
    return lines
