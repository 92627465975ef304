"""``log_format = "json"``: one JSON object per line, with the same safety as text logs.

Each line has ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, the
correlation ID of the work at hand (``correlation_id``, ``broker.common.correlation``)
when there is one, the fields a log call gave (``extra=correlation.fields(...)``), and
``exception`` (frames and types, messages withheld as in text logs). The message is
made by the same filters as a text line (``broker.common.logsafety``): no patient data,
printable, bounded.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from broker.common import correlation
from broker.common.jsontext import ascii_only
from broker.common.logsafety import WithheldDetails

__all__ = ["JsonLines"]

_PLAIN = (str, int, float, bool, list, tuple, type(None))


class JsonLines(WithheldDetails):
    """A formatter writing one JSON object per record (module docstring); ``log_phi``
    keeps exception messages, as the text formatter without withholding does."""

    def __init__(self, *, log_phi: bool = False) -> None:
        super().__init__()
        self._log_phi = log_phi

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        correlation_id = correlation.current()
        if correlation_id:
            line["correlation_id"] = correlation_id
        extra = getattr(record, correlation.FIELDS, None)
        if isinstance(extra, dict):
            for key, value in extra.items():
                line.setdefault(str(key), value if isinstance(value, _PLAIN) else str(value))
        if record.exc_info is not None and record.exc_info[1] is not None:
            if self._log_phi:
                line["exception"] = logging.Formatter.formatException(self, record.exc_info)
            else:
                line["exception"] = self.formatException(record.exc_info)
        return ascii_only(line)
