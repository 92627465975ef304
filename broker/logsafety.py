"""Logs that hold no patient data and that no sender can forge.

What reaches a log line from outside (MSH-10, AE titles, peers' text) is made
printable and bounded by :class:`SafeArguments`; tracebacks keep where a fault
happened but not the exception messages, which can quote field values
(:class:`WithheldDetails`); warnings from libraries (pydicom's validation
warnings print the value they reject: ``Invalid value for VR DA: '1980-01-01'``)
lose what they quote (:class:`QuotedValues`). ``log_phi = true`` turns the
last two off, for debugging on a test system.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from types import TracebackType

__all__ = [
    "ARGUMENT_LIMIT",
    "QuotedValues",
    "SafeArguments",
    "WithheldDetails",
    "configure_logging",
    "printable",
]

ARGUMENT_LIMIT = 200  # characters of one logged argument; the rest is cut and marked
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_QUOTED = re.compile(r"""'[^']*'|"[^"]*"|b'[^']*'""")
_HANDLER = "mwl-broker"
_WITHHELD = "(details withheld: they may hold patient data; log_phi = true shows them)"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def printable(text: str) -> str:
    """``text`` safe for a terminal or a log line: control and format characters (escape
    sequences, carriage returns, bidirectional overrides) shown as ``\\xNN``/``\\uNNNN``."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def bounded(text: str, limit: int = ARGUMENT_LIMIT) -> str:
    """:func:`printable` ``text``, at most ``limit`` characters (then ``…(N chars)``)."""
    safe = printable(text)
    if len(safe) <= limit:
        return safe
    return f"{safe[:limit]}…({len(safe)} chars)"


class SafeArguments(logging.Filter):
    """Every string argument of a record printable and bounded: a sender cannot write
    new log lines, terminal escapes or megabytes into the log through MSH-10."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(bounded(a) if isinstance(a, str) else a for a in record.args)
        return True


class QuotedValues(logging.Filter):
    """Quoted text in library warnings (``py.warnings``, pydicom) replaced by ``'…'``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "py.warnings" or record.name.startswith("pydicom"):
            record.msg = _QUOTED.sub("'…'", record.getMessage())
            record.args = ()
        return True


class WithheldDetails(logging.Formatter):
    """Tracebacks with their frames and exception types, without exception messages."""

    def formatException(self, ei: ExcInfo | tuple[None, None, None]) -> str:
        if ei[1] is None:
            return ""
        te = traceback.TracebackException.from_exception(ei[1], capture_locals=False)
        lines: list[str] = []
        for part in _chain(te):
            lines.append("Traceback (most recent call last):\n")
            lines.extend(part.stack.format())
            lines.append(f"{_type_name(part)}: {_WITHHELD}\n")
        return "".join(lines).rstrip("\n")


def _type_name(te: traceback.TracebackException) -> str:
    kind = te.exc_type
    if kind is None:
        return "Exception"
    module = kind.__module__
    return (
        kind.__qualname__ if module in ("builtins", "__main__") else f"{module}.{kind.__qualname__}"
    )


def _chain(te: traceback.TracebackException) -> list[traceback.TracebackException]:
    """The exception and its causes / contexts, oldest first (as Python prints them)."""
    chain: list[traceback.TracebackException] = []
    current: traceback.TracebackException | None = te
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return list(reversed(chain))


def configure_logging(level: str, *, log_phi: bool = False) -> None:
    """Log to stderr at ``level`` through the filters above (once per process)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT) if log_phi else WithheldDetails(_FORMAT))
    handler.addFilter(SafeArguments())
    if not log_phi:
        handler.addFilter(QuotedValues())
    handler.set_name(_HANDLER)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER]:
        root.removeHandler(old)  # ours from an earlier call; others' handlers stay
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
