"""Who is calling: the calling AE title and address of an association, loggable.

Pure helpers for the acceptance policy (``broker.dicom.profiles.ProfileSet.decide``)
and for log lines; addresses and networks are read by ``broker.common.netaddr``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["caller_of", "calling_ae", "loggable_ae"]

_AE_TITLE_MAX = 16  # PS3.5 Table 6.2-1: an AE value is at most 16 characters


def loggable_ae(title: object) -> str:
    """An AE title as received, safe for a log line: printable ASCII only (anything else,
    such as a line break, is ``?``), without leading and trailing spaces, at most 16
    characters (more are cut, and ``...`` says so)."""
    text = str(title).strip()
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in text[:_AE_TITLE_MAX])
    return cleaned + ("..." if len(text) > _AE_TITLE_MAX else "")


def calling_ae(event: Any) -> str:
    """The calling AE title of a pynetdicom event's association, for log lines
    (``loggable_ae``); ``?`` when there is none."""
    try:
        return loggable_ae(event.assoc.requestor.ae_title)
    except AttributeError:
        return "?"


def caller_of(event: Any) -> tuple[str, str]:
    """The calling AE title and source address of a pynetdicom event's association, as
    received, for the acceptance policy."""
    try:
        requestor = event.assoc.requestor
        return str(requestor.ae_title), str(requestor.address)
    except AttributeError:
        return "", ""
