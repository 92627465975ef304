"""Logs that hold no patient data and that no sender can forge.

What reaches a log line from outside (MSH-10, AE titles, peers' text) is made
printable and bounded by :class:`SafeArguments`; tracebacks keep where a fault
happened but not the exception messages, which can quote field values
(:class:`WithheldDetails`); warnings and log lines from libraries (pydicom's
validation warnings print the value they reject: ``Invalid value for VR DA:
'1980-01-01'``; pynetdicom quotes a raw AE title it cannot decode, and prints
identifiers in brackets when its identifier logging is on) lose what they quote,
and an exception logged as the message itself loses its text
(:class:`QuotedValues`). pynetdicom and pydicom build their messages themselves
(f-strings, no arguments), so their whole message is made printable and bounded.
``log_phi = true`` turns withholding off, for debugging on a test system;
escaping and bounds stay.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from types import TracebackType
from typing import TextIO

__all__ = [
    "ARGUMENT_LIMIT",
    "MESSAGE_LIMIT",
    "QuotedValues",
    "SafeArguments",
    "WithheldDetails",
    "configure_logging",
    "printable",
    "safety_handler",
]

ARGUMENT_LIMIT = 200  # characters of one logged argument; the rest is cut and marked
MESSAGE_LIMIT = 1000  # characters of a library's own message
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_QUOTED = re.compile(r"""'[^']*'|"[^"]*"|b'[^']*'""")
_BRACKETED = re.compile(r"\[[^\]]*\]")
_LIBRARIES = ("pynetdicom", "pydicom", "py.warnings")
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


def _library(name: str) -> bool:
    return any(name == lib or name.startswith(f"{lib}.") for lib in _LIBRARIES)


class SafeArguments(logging.Filter):
    """Every string argument of a record printable and bounded: a sender cannot write
    new log lines, terminal escapes or megabytes into the log through MSH-10. A
    library's record (pynetdicom, pydicom, warnings) has its whole message so treated,
    as it puts what it received into the message itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _library(record.name):
            record.msg = bounded(record.getMessage(), MESSAGE_LIMIT)
            record.args = ()
        elif isinstance(record.args, tuple):
            record.args = tuple(bounded(a) if isinstance(a, str) else a for a in record.args)
        return True


class QuotedValues(logging.Filter):
    """In library records (warnings, pydicom, pynetdicom): quoted text replaced by
    ``'…'``, bracketed text by ``[…]``, an exception logged as the message by its type."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _library(record.name):
            return True
        if isinstance(record.msg, BaseException):
            message = f"{type(record.msg).__name__}: {_WITHHELD}"
        else:
            message = _BRACKETED.sub("[…]", _QUOTED.sub("'…'", record.getMessage()))
        record.msg, record.args = message, ()
        return True


class WithheldDetails(logging.Formatter):
    """Tracebacks with their frames and exception types, without exception messages."""

    def format(self, record: logging.LogRecord) -> str:
        """As ``logging.Formatter``, but never with a traceback text another handler's
        formatter cached on the record (it would hold the messages)."""
        cached, record.exc_text = record.exc_text, None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

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


def safety_handler(
    stream: TextIO, *, log_phi: bool = False, log_format: str = "text"
) -> logging.Handler:
    """A handler writing to ``stream`` through the filters above (withholding first, so
    that a bound never cuts a quoted value in two); ``log_format = "json"``: one JSON
    object per line (``broker.common.jsonlog``)."""
    handler = logging.StreamHandler(stream)
    if log_format == "json":
        from broker.common.jsonlog import JsonLines  # it builds on this module

        handler.setFormatter(JsonLines(log_phi=log_phi))
    else:
        handler.setFormatter(logging.Formatter(_FORMAT) if log_phi else WithheldDetails(_FORMAT))
    if not log_phi:
        handler.addFilter(QuotedValues())
    handler.addFilter(SafeArguments())
    return handler


def configure_logging(level: str, *, log_phi: bool = False, log_format: str = "text") -> None:
    """Log to stderr at ``level`` through the filters above (once per process)."""
    handler = safety_handler(sys.stderr, log_phi=log_phi, log_format=log_format)
    handler.set_name(_HANDLER)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER]:
        root.removeHandler(old)  # ours from an earlier call; others' handlers stay
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
