"""What every section of a mapping file parser shares: errors, scalars, HL7 paths, versions.

:class:`ParserBase` raises :class:`broker.errors.ConfigError` naming the file,
the line when the text is known, and the rule (``orders.yaml:70:
attributes.PatientName``), and checks the plain values sections are built of:
non-empty mappings, text, HL7 paths (against the HL7 standard, for the
message types and versions the file handles) and HL7 versions.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import NoReturn

from broker.errors import ConfigError
from broker.hl7.paths import HL7Path, PathSyntaxError, parse_path
from broker.mapping.hl7_structure import SUPPORTED_VERSIONS, Target, check_path
from broker.mapping.spec import LookupTable

__all__ = ["ParserBase", "suggest"]

_LAST_PART_RE = re.compile(r"(\[\d+\]|\.[^.\[\]]*)$")  # "[2]" or ".key" at the end of a rule name


def suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


class ParserBase:
    """Every error names the file, the line if known, and the rule.

    ``targets`` are the (message type, HL7 version) pairs the file handles,
    set by its message-type section before any path is read; each path must
    exist in at least one of them.
    """

    def __init__(self, source: str, lines: Mapping[str, int] | None = None) -> None:
        self.source = source
        self.lines: Mapping[str, int] = lines or {}
        self.tables: dict[str, LookupTable] = {}
        self.targets: tuple[Target, ...] = ()

    def fail(self, rule: str, message: str, *, at: str | None = None) -> NoReturn:
        """Raise for ``rule``; ``at`` is a finer place in the file (``...path[2]``) for the line."""
        line = self.line(at or rule)
        where = f"{self.source}:{line}" if line is not None else self.source
        raise ConfigError(setting=f"{where}: {rule}", message=message)

    def line(self, name: str) -> int | None:
        """The line of ``name``, else of the nearest enclosing name (``a.b[2]``, ``a.b``, ``a``)."""
        while name:
            if name in self.lines:
                return self.lines[name]
            name = _LAST_PART_RE.sub("", name) if _LAST_PART_RE.search(name) else ""
        return None

    # -- scalars and containers -------------------------------------------------
    def dict_of(self, rule: str, data: object) -> dict[str, object]:
        if not isinstance(data, dict) or not data:
            self.fail(rule, "must be a non-empty mapping (key: value lines)")
        for key in data:
            if not isinstance(key, str):
                self.fail(rule, f"key {key!r} must be text (quote it)")
        return data

    def text(self, rule: str, raw: object) -> str:
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            self.fail(rule, f"{raw!r} must be text (quote it: YAML reads yes/no as booleans)")
        return str(raw)

    def path(self, rule: str, raw: object, *, at: str | None = None) -> HL7Path:
        """Parse a path and check it exists in one of :attr:`targets` (HL7 v2 structures)."""
        try:
            path = parse_path(self.text(rule, raw))
        except PathSyntaxError as e:
            self.fail(rule, str(e), at=at)
        problem = check_path(path, self.targets)
        if problem is not None:
            self.fail(rule, problem, at=at)
        return path

    def paths(self, rule: str, raw: object, *, at: str | None = None) -> tuple[HL7Path, ...]:
        """One path or a list of them; ``at`` is where they are in the file (default ``rule``)."""
        at = at or rule
        if not isinstance(raw, list):
            return (self.path(rule, raw, at=at),)
        if not raw:
            self.fail(rule, "the list of HL7 paths is empty", at=at)
        return tuple(self.path(rule, item, at=f"{at}[{i}]") for i, item in enumerate(raw, 1))

    def versions(self, rule: str, raw: object) -> tuple[str, ...]:
        """``versions:``: an HL7 version or a list of them, each one hl7apy knows."""
        items = raw if isinstance(raw, list) else [raw]
        # An unquoted 2.4 is a YAML float; no HL7 version reads differently as one.
        versions = [str(v) if isinstance(v, float) else self.text(rule, v) for v in items]
        if not versions:
            self.fail(rule, "give an HL7 version or a list of them, e.g. ['2.3.1', '2.4']")
        for version in versions:
            if version not in SUPPORTED_VERSIONS:
                self.fail(
                    rule,
                    f"HL7 version {version!r} is not one hl7apy knows "
                    f"({', '.join(SUPPORTED_VERSIONS)}){suggest(version, SUPPORTED_VERSIONS)}",
                )
        return tuple(dict.fromkeys(versions))
