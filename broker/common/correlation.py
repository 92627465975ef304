"""The correlation ID of the work at hand, for log lines (``log_format = "json"``).

Set where work arrives: an HL7 message (``m-`` and a pseudonym of its MSH-3, MSH-4 and
MSH-10, the identity its resends share) and an MPPS request (``p-`` and a pseudonym of
the instance's UID). Log lines of that work carry it as ``correlation_id``; the lines
that say which worklist entries a message wrote, or an MPPS linked, carry their entry
ids (``entries``: pseudonyms of the order key), which join a message to its MPPS. Never
patient data: pseudonyms only.

A :mod:`contextvars` variable, so asyncio tasks and ``asyncio.to_thread`` inherit it;
work interleaved on one thread (the intake's steps, ``broker.services.batching``) is
wrapped by :func:`correlated`, which sets it around each of its resumptions.
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Callable, Generator, Mapping
from typing import Any, TypeVar

__all__ = ["correlated", "current", "digest", "fields", "set_current", "using"]

_T = TypeVar("_T")
_Y = TypeVar("_Y")
_S = TypeVar("_S")

_CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("mwl_correlation_id", default="")
FIELDS = "fields"  # the LogRecord attribute (``extra={"fields": {...}}``) JSON logs print
_ID_HEX = 16


def current() -> str:
    """The correlation ID of the work at hand ("" when none)."""
    return _CURRENT.get()


def set_current(correlation_id: str) -> contextvars.Token[str]:
    """Make ``correlation_id`` current; hand the token to ``reset`` (:func:`using`)."""
    return _CURRENT.set(correlation_id)


def reset(token: contextvars.Token[str]) -> None:
    _CURRENT.reset(token)


def using(correlation_id: str, call: Callable[[], _T]) -> _T:
    """``call()`` with ``correlation_id`` current."""
    token = _CURRENT.set(correlation_id)
    try:
        return call()
    finally:
        _CURRENT.reset(token)


def digest(kind: str, value: str, pseudonym: Callable[[str, str], str] | None = None) -> str:
    """``kind`` and a pseudonym of ``value``: the store's keyed one (``KeySchema.pseudonym``)
    when given, else a plain hash (of values that are not patient data)."""
    if pseudonym is not None:
        return f"{kind}-{pseudonym('correlation-' + kind, value)[:_ID_HEX]}"
    return f"{kind}-{hashlib.sha256(value.encode()).hexdigest()[:_ID_HEX]}"


def fields(**values: Any) -> Mapping[str, Any]:
    """``extra`` for a log call whose JSON line carries ``values`` as fields of its own."""
    return {FIELDS: values}


def correlated(correlation_id: str, steps: Generator[_Y, _S, _T]) -> Generator[_Y, _S, _T]:
    """``steps`` with ``correlation_id`` current while each of its parts runs (and only
    then: the thread runs other work between them)."""
    token = _CURRENT.set(correlation_id)
    try:
        step = next(steps)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    finally:
        _CURRENT.reset(token)
    while True:
        try:
            reply = yield step
        except BaseException as e:  # thrown in: hand it on, inside the context
            token = _CURRENT.set(correlation_id)
            try:
                step = steps.throw(e)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            finally:
                _CURRENT.reset(token)
            continue
        token = _CURRENT.set(correlation_id)
        try:
            step = steps.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            _CURRENT.reset(token)
