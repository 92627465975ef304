"""Regular expressions of mapping files (``when: {match: …}``, ``extract:``), run on RE2.

An admin writes the pattern; any RIS writes the text it runs on, in the one HL7
worker. Python's :mod:`re` backtracks, so a pattern like ``((a)+)+`` takes
seconds on a few dozen characters; RE2 (google-re2) never backtracks and runs
in time linear in the text. :func:`compile_pattern` is the only way a mapping
pattern is made: the parser calls it when a file is checked and the engine
runs the :class:`Pattern` it returns, so a pattern that validates is exactly
the one that runs.

Refused, with advice (:class:`PatternError`): what RE2 does not do
(back-references, look-arounds, atomic groups, possessive quantifiers, the
inline flags ``x a u L``, ``\\Z``), a pattern longer than :data:`MAX_PATTERN`
characters or needing more than :data:`MAX_MEM` bytes, and what RE2 would read
differently from Python's ``re`` without complaint (``a{,3}``, ``\\C``).
Differences that remain (``\\d \\w \\s \\b`` are ASCII, ``$`` is only the end
of the text, captures in repeated empty groups) are listed in
``mappings/README.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import re2

__all__ = ["MAX_MATCHED", "MAX_MEM", "MAX_PATTERN", "Pattern", "PatternError", "compile_pattern"]

MAX_PATTERN = 200  # characters in a pattern
MAX_MATCHED = 1000  # characters of a value a pattern looks at
# Bytes RE2 may use for one pattern: its compiled programs (forward and reverse) and
# its DFA cache. A pattern whose programs do not fit is refused when it is compiled;
# the bound also bounds the time of one match (RE2's slowest path is the size of its
# program times the length of the text).
MAX_MEM = 256 * 1024

_OPEN_COUNT = re.compile(r"\{,(\d*)\}")  # a{,3}: Python's {0,3}, RE2's literal text
_SURROGATE = re.compile("[\ud800-\udfff]")
_FLAGS = re.compile(r"\(\?[a-zA-Z-]*")
_LOOK = {
    "(?=": "look-ahead",
    "(?!": "negative look-ahead",
    "(?<=": "look-behind",
    "(?<!": "negative look-behind",
}


class PatternError(ValueError):
    """A pattern that is refused; the message says why and what to write instead."""


@dataclass(frozen=True)
class Pattern:
    """A compiled mapping pattern (equal to another with the same text)."""

    text: str
    groups: int  # capturing groups
    _regexp: Any = field(compare=False, repr=False)

    def fullmatch(self, value: str) -> bool:
        """Whether all of ``value`` matches (over :data:`MAX_MATCHED` characters: never)."""
        if len(value) > MAX_MATCHED:
            return False
        return _run(self._regexp.fullmatch, value) is not None

    def extract(self, value: str) -> str:
        """The first match in the first :data:`MAX_MATCHED` characters of ``value``: its
        first group if the pattern has one, else the whole match; ``""`` if none (or the
        first group took no part in the match)."""
        match = _run(self._regexp.search, value[:MAX_MATCHED])
        if match is None:
            return ""
        found = match.group(1 if self.groups else 0)
        return found if isinstance(found, str) else ""


def _run(method: Callable[[str], Any], value: str) -> Any:
    try:
        return method(value)
    except UnicodeEncodeError:
        # RE2 reads UTF-8, and a lone surrogate (never in a decoded message) has no
        # UTF-8: it is read as U+FFFD, one character for one, so offsets stay right.
        return method(_SURROGATE.sub("\ufffd", value))


def _options() -> Any:
    options = re2.Options()
    options.max_mem = MAX_MEM
    options.log_errors = False  # RE2 would print to stderr; the refusal says it instead
    return options


def compile_pattern(text: str) -> Pattern:
    """Compile an admin's pattern for RE2, or raise :class:`PatternError` saying why not."""
    if len(text) > MAX_PATTERN:
        raise PatternError(f"the regular expression is longer than {MAX_PATTERN} characters")
    problem = _read_differently(text)
    if problem is not None:
        raise PatternError(f"{text!r}: {problem}")
    try:
        regexp = re2.compile(text, _options())
    except re2.error as e:
        complaint = e.args[0] if e.args else ""
        if isinstance(complaint, bytes):
            complaint = complaint.decode("utf-8", "replace")
        raise PatternError(f"{text!r}: {_advice(text, str(complaint))}") from e
    except UnicodeEncodeError as e:
        raise PatternError(f"{text!r}: holds a lone surrogate (write the character)") from e
    # RE2 compiles the reverse program (used to find where a match starts) on first
    # need; compile it now, so a pattern too large for it is refused here, not at match.
    if regexp.reverseprogramsize < 0:
        raise PatternError(f"{text!r}: {_too_large()}")
    return Pattern(text, regexp.groups, regexp)


def _too_large() -> str:
    return (
        f"the pattern needs more than the {MAX_MEM // 1024} KiB a pattern may use (large "
        "counts on big classes, e.g. \\p{L}{200}, or counts that multiply); use + or * or "
        "smaller counts"
    )


def _read_differently(text: str) -> str | None:
    """Syntax RE2 accepts but reads otherwise than Python's ``re`` does, outside ``[...]``."""
    i, in_class = 0, False
    while i < len(text):
        char = text[i]
        if char == "\\":
            following = text[i + 1 : i + 2]
            if following == "Q":  # \Q...\E: literal text (RE2 only)
                end = text.find("\\E", i + 2)
                i = len(text) if end < 0 else end + 2
                continue
            if following == "C":
                return "\\C (one byte) can split a character; write . (one character)"
            i += 2
        elif in_class:
            end = text.find(":]", i + 2) if text.startswith("[:", i) else -1
            in_class = end >= 0 or char != "]"
            i = end + 2 if end >= 0 else i + 1
        elif char == "[":
            in_class, i = True, i + 1
            if text[i : i + 1] == "^":
                i += 1
            if text[i : i + 1] == "]":  # a "]" first in a class is itself
                i += 1
        else:
            count = _OPEN_COUNT.match(text, i) if char == "{" else None
            if count is not None:
                return (
                    f"write {{0,{count[1]}}}: RE2 reads {count[0]} as those characters "
                    f"(Python's re as {{0,{count[1]}}})"
                )
            i += 1
    return None


def _advice(text: str, complaint: str) -> str:
    """RE2's complaint about ``text``, said with what to write instead."""
    kind, _, where = complaint.partition(": ")
    if kind == "invalid escape sequence" and (where[1:2].isdigit() or where[1:2] in ("g", "k")):
        return (
            f"back-references ({where}) are not supported (RE2 matches in linear time and "
            "cannot compare with an earlier group); write the repeated part out again, e.g. "
            "'([0-9]+)-[0-9]+' (any digits, not necessarily the same)"
        )
    if kind == "invalid perl operator" and where == "(?P" and "(?P=" in text:
        return (
            "back-references ((?P=name)) are not supported (RE2 matches in linear time); "
            "write the repeated part out again"
        )
    if kind == "invalid perl operator" and where in _LOOK:
        return (
            f"look-arounds ({where}…), here a {_LOOK[where]}, are not supported (RE2); match "
            "the text itself and keep a part with a group (extract: 'ID:([0-9]+)' instead of "
            "'(?<=ID:)[0-9]+'), or add a condition with not:"
        )
    if kind == "invalid perl operator" and where in ("(?>", "(?("):
        what = "atomic groups (?>…)" if where == "(?>" else "conditionals (?(…)…)"
        return f"{what} are not supported (RE2 never backtracks: write (?:…) or two rules)"
    if kind == "invalid perl operator" and where == "(?#":
        return "comments (?#…) are not supported; remove the comment"
    if kind == "invalid perl operator" and _FLAGS.fullmatch(where):
        return (
            f"inline flags {where}) are not supported: RE2 knows i (ignore case), m (multi-line), "
            "s (. matches newline) and U (ungreedy), not x, a, u or L"
        )
    if kind == "bad repetition operator" and where.endswith("+") and len(where) > 1:
        return f"possessive quantifiers ({where}) are not needed: RE2 never backtracks; drop the +"
    if kind == "invalid escape sequence" and where == "\\Z":
        return "write \\z for the end of the text (RE2 has no \\Z)"
    if kind == "invalid escape sequence" and where[1:2] in ("u", "U", "N"):
        return f"write a code point as \\x{{hhhh}} (RE2 has no {where}), or the character itself"
    if kind == "invalid repetition size":
        return f"{where}: a count is at most 1000, and counts inside counts multiply"
    if kind.startswith("pattern too large"):
        return _too_large()
    return f"not a valid regular expression (RE2): {complaint}"
