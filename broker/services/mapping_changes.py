"""What an edit of the mapping set changes, and what is wrong with it.

An edit is made over a *base* set (the active version, or before the first publish the
seed files): files whose text changes (``edited``: a name the base does not have is
added, as it always was), new files (``added``: refused if the base has the name) and
files to delete (``deleted``: refused if the base has no such file). One edit may do all
three; :func:`apply_changes` makes the set publishing it would give, refusing
(:class:`ChangeRefused`, naming the request field) what cannot be meant, and
:func:`check_changes` says what is wrong with that set: each changed file alone (with
line and column), then the set as a whole (two files claiming one message type).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from broker.errors import BrokerError, ConfigError
from broker.mapping.registry import MappingRegistry
from broker.store.mapping_versions import check_file_name

__all__ = [
    "ChangeRefused",
    "FileProblem",
    "MappingChanges",
    "apply_changes",
    "check_changes",
    "check_mapping_texts",
]

_NONE: Mapping[str, str] = MappingProxyType({})


class ChangeRefused(BrokerError):
    """An edit that cannot be applied to its base: ``field`` names the request field
    (``add``, ``delete``) the refusal is about."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class MappingChanges:
    """One edit of the mapping set: files changed, files added, file names deleted."""

    edited: Mapping[str, str] = field(default_factory=lambda: _NONE)
    added: Mapping[str, str] = field(default_factory=lambda: _NONE)
    deleted: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.edited or self.added or self.deleted)

    def describe(self) -> str:
        """``orders.yaml, new cardio.yaml, without adt.yaml`` (a preview's label)."""
        parts = [*sorted(self.edited), *(f"new {n}" for n in sorted(self.added))]
        parts += [f"without {n}" for n in sorted(self.deleted)]
        return ", ".join(parts)


@dataclass(frozen=True)
class FileProblem:
    """One thing wrong with an edited mapping set: the file (None: the set as a whole), the
    line and column when known, the rule, and the message."""

    file: str | None
    line: int | None
    column: int | None
    rule: str
    message: str


def _shown(name: str) -> str:
    return repr(name.encode("unicode_escape").decode("ascii")[:120])


def apply_changes(base: Mapping[str, str], changes: MappingChanges, label: str) -> dict[str, str]:
    """The set ``changes`` make of ``base`` (called ``label`` in refusals, e.g. ``v3``);
    :class:`ChangeRefused` for a new file whose name is not allowed or taken, a deletion
    of a file ``base`` does not have (or one also changed or added), or of every file."""
    for name in changes.added:
        try:
            check_file_name(name)
        except BrokerError as e:
            raise ChangeRefused("add", str(e)) from e
        if name in base:
            raise ChangeRefused(
                "add", f"{label} already has a file {_shown(name)}: change it under 'files'"
            )
        if name in changes.edited:
            raise ChangeRefused("add", f"{_shown(name)} is under 'files' too: give it once")
    seen: set[str] = set()
    for name in changes.deleted:
        if name in seen:
            raise ChangeRefused("delete", f"{_shown(name)} is named twice")
        seen.add(name)
        if name not in base:
            raise ChangeRefused("delete", f"{label} has no file {_shown(name)} to delete")
        if name in changes.edited or name in changes.added:
            where = "files" if name in changes.edited else "add"
            raise ChangeRefused(
                "delete", f"{_shown(name)} is under '{where}' too: change or delete"
            )
    files = {name: text for name, text in base.items() if name not in seen}
    files.update(changes.edited)
    files.update(changes.added)
    if not files:
        raise ChangeRefused(
            "delete", "a mapping set keeps at least one file: this deletes every file"
        )
    return files


_SETTING = re.compile(r"(?P<file>[^:]*?)(?::(?P<line>\d+))?(?:: (?P<rule>.*))?")
_YAML_MARK = re.compile(r"invalid YAML: line (?P<line>\d+), column (?P<column>\d+): ")


def _problem(error: ConfigError, files: Mapping[str, str]) -> FileProblem:
    """Where ``error`` (raised by :meth:`MappingRegistry.from_texts`) is, as fields."""
    match = _SETTING.fullmatch(error.setting)
    name, line, rule = error.setting, None, ""
    if match is not None:
        name, rule = match["file"], match["rule"] or ""
        line = int(match["line"]) if match["line"] else None
    column = None
    mark = _YAML_MARK.match(error.message)
    if mark is not None:
        line, column = int(mark["line"]), int(mark["column"])
    return FileProblem(name if name in files else None, line, column, rule, error.message)


def check_changes(
    changes: MappingChanges, base: Mapping[str, str], label: str
) -> tuple[FileProblem, ...]:
    """What is wrong with the set ``changes`` make of ``base``: each changed or new file
    alone, then (when each is valid) the whole set; () when valid. ChangeRefused as
    :func:`apply_changes`."""
    merged = apply_changes(base, changes, label)
    problems = []
    for name, text in {**changes.edited, **changes.added}.items():
        try:
            check_file_name(name)
        except BrokerError as e:
            problems.append(FileProblem(name, None, None, "file name", str(e)))
            continue
        try:
            MappingRegistry.from_texts({name: text})
        except ConfigError as e:
            problems.append(_problem(e, {name: text}))
    if problems:
        return tuple(problems)
    try:
        MappingRegistry.from_texts(merged)
    except ConfigError as e:
        return (_problem(e, merged),)
    return ()


def check_mapping_texts(
    edited: Mapping[str, str], base: Mapping[str, str]
) -> tuple[FileProblem, ...]:
    """What is wrong with ``edited`` files (name → YAML text): each alone, then (when each
    is valid) merged over ``base`` as publishing them would make the set; () when valid."""
    return check_changes(MappingChanges(edited), base, "the set")
