"""JSON as the broker reads and writes it: Redis values, script arguments, the audit
trail and the CLI's output all go through this module.

- :func:`dumps`: UTF-8 text as is (not ``\\u`` escaped), keys in the order given, the
  default separators; what the broker writes everywhere unless told otherwise below.
  One encoder is made once: ``json.dumps`` with any option builds a new encoder on
  every call, a fifth of the cost of encoding an entry.
- :func:`canonical`: the same with the keys sorted, for a stored value that must not
  depend on the order a dict was built in (a mapping version's file set).
- :func:`ascii_only`: every character outside ASCII ``\\u`` escaped, C1 controls and
  bidirectional overrides included, for text printed to a terminal that another
  program reads (``mwl-broker audit --json``).
- :func:`loads`: the value of JSON text, ``str`` or UTF-8 ``bytes`` as Redis returns it.

Each writer's output is byte for byte what ``json.dumps`` gives with the options it
names, so values stored before read back, and compare, the same.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["ascii_only", "canonical", "dumps", "loads"]

_ENCODER = json.JSONEncoder(ensure_ascii=False)
_CANONICAL = json.JSONEncoder(ensure_ascii=False, sort_keys=True)
_ASCII = json.JSONEncoder(ensure_ascii=True)


def dumps(value: Any) -> str:
    """``value`` as JSON text: ``json.dumps(value, ensure_ascii=False)``."""
    return _ENCODER.encode(value)


def canonical(value: Any) -> str:
    """``value`` as JSON text, keys sorted: ``json.dumps(value, ensure_ascii=False,
    sort_keys=True)``."""
    return _CANONICAL.encode(value)


def ascii_only(value: Any) -> str:
    """``value`` as JSON text in ASCII: ``json.dumps(value)``."""
    return _ASCII.encode(value)


def loads(text: str | bytes | bytearray) -> Any:
    """The value of JSON ``text``."""
    return json.loads(text)
