"""Wild card matching (PS3.4 C.2.2.2.4) without regular expressions.

``*`` matches any sequence of characters, the empty one included; ``?`` matches
exactly one character. Every other character matches itself (case folding is
the caller's, ``broker.dicom.matching``).

Translating a key into a backtracking regular expression (``*`` to ``.*``) lets
a caller choose its cost: ``*?`` repeated k times then a character the value
lacks makes Python's ``re`` try every way to split the value, 2**k and more.
Here a pattern is cut at its ``*``s into segments of literal text and ``?``:
the first segment must start the value, the last must end it, and each one in
between is placed at its leftmost possible position after the previous one.
Leftmost placement is never wrong (a later position leaves less room for what
follows), so nothing is ever undone: at most O(len(value) * len(pattern))
steps, and in practice one ``str.find`` per segment. Consecutive ``*``s are
one ``*``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

__all__ = ["WILDCARDS", "Glob", "compile_glob", "glob_match"]

WILDCARDS = frozenset("*?")


@dataclass(frozen=True, slots=True)
class _Segment:
    """Text between two ``*``: its length, and its literal runs between ``?``s."""

    length: int
    chunks: tuple[tuple[int, str], ...]  # (offset in the segment, literal text)

    def at(self, value: str, pos: int) -> bool:
        """Whether the segment matches ``value`` at ``pos`` (``value`` long enough)."""
        return all(value.startswith(text, pos + offset) for offset, text in self.chunks)

    def find(self, value: str, start: int, end: int) -> int:
        """The leftmost position in ``[start, end - length]`` where the segment matches
        ``value``, or -1."""
        last = end - self.length
        if last < start:
            return -1
        if not self.chunks:  # only "?": any position has room
            return start
        (offset, first), rest = self.chunks[0], self.chunks[1:]
        stop = last + offset + len(first)  # ``first`` must end by here
        found = value.find(first, start + offset, stop)
        while found >= 0:
            pos = found - offset
            if all(value.startswith(text, pos + o) for o, text in rest):
                return pos
            found = value.find(first, found + 1, stop)
        return -1


def _segment(text: str) -> _Segment:
    chunks = []
    offset = 0
    for piece in text.split("?"):
        if piece:
            chunks.append((offset, piece))
        offset += len(piece) + 1
    return _Segment(len(text), tuple(chunks))


@dataclass(frozen=True, slots=True)
class Glob:
    """A compiled wild card pattern (``compile_glob``)."""

    head: _Segment  # before the first "*" (the whole pattern when it has none)
    middle: tuple[_Segment, ...]  # between "*"s, empty ones dropped
    tail: _Segment | None  # after the last "*"; None when there is no "*"

    def match(self, value: str) -> bool:
        """Whether the whole of ``value`` matches (PS3.4 C.2.2.2.4)."""
        head, tail = self.head, self.tail
        if tail is None:
            return len(value) == head.length and head.at(value, 0)
        end = len(value) - tail.length
        if end < head.length or not head.at(value, 0) or not tail.at(value, end):
            return False
        pos = head.length
        for segment in self.middle:
            found = segment.find(value, pos, end)
            if found < 0:
                return False
            pos = found + segment.length
        return True


@lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> Glob:
    """``pattern`` with ``*`` and ``?`` as wild cards (PS3.4 C.2.2.2.4), ready to match."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return Glob(_segment(pattern), (), None)
    middle = tuple(_segment(p) for p in parts[1:-1] if p)
    return Glob(_segment(parts[0]), middle, _segment(parts[-1]))


def glob_match(pattern: str, value: str) -> bool:
    """Whether ``value`` matches the wild card ``pattern`` (PS3.4 C.2.2.2.4): ``*`` any
    sequence of characters including none, ``?`` exactly one character."""
    return compile_glob(pattern).match(value)
