"""The scanner profiles as the console shows them: each ``[scanners.<AE>]`` table with the
broker's defaults filled in (hidden statuses, answer limit, character set), and how many
DICOMweb tokens are bound to it. Nothing here changes; the profiles come from the
settings file (``broker.dicom.profiles``)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass

from broker.dicom.profiles import DEFAULT_PROFILE, LOOPBACK, ProfileSet, ScannerProfile
from broker.services.auth import AuthService
from broker.settings import Settings

__all__ = ["ScannerView", "scanner_views"]


@dataclass(frozen=True)
class ScannerView:
    """One profile, its defaults resolved (see ``broker.dicom.profiles`` for each key)."""

    ae_title: str
    addresses: list[str]  # empty: any source address
    stations: list[str] | None  # None: every station
    unassigned: bool
    date_window: str | None  # "-1..+1" days around today; None: any date
    modality: str | None
    hidden_statuses: list[str]
    max_answers: int
    over_limit: str
    sort: list[str]
    character_set: str
    unrepresentable: str
    mpps_update_others: bool
    dicomweb_tokens: int
    own_table: bool  # False: the built-in default of callers without a table


def scanner_views(profiles: ProfileSet, settings: Settings, auth: AuthService) -> list[ScannerView]:
    """Every profile (the default "*" too, built in when the site has no "*" table)."""
    tokens = Counter(t.scanner for t in auth.tokens() if t.scanner)
    found = profiles.profiles
    views = [_view(p, settings, tokens[p.ae_title], own=True) for p in found]
    if profiles.allow_unknown == LOOPBACK:  # other callers: from this host only
        views = [_loopback(v) if v.ae_title == "*" and not v.addresses else v for v in views]
    if not any(p.ae_title == "*" for p in found) and profiles.allow_unknown is not False:
        default = _view(DEFAULT_PROFILE, settings, 0, own=False)
        views.insert(0, _loopback(default) if profiles.allow_unknown == LOOPBACK else default)
    return views


def _loopback(view: ScannerView) -> ScannerView:
    return dataclasses.replace(view, addresses=["127.0.0.0/8", "::1/128"])


def _view(p: ScannerProfile, settings: Settings, tokens: int, *, own: bool) -> ScannerView:
    hidden = settings.dicom_hidden_statuses if p.hidden_statuses is None else p.hidden_statuses
    window = None if p.date_window is None else f"{p.date_window[0]:+d}..{p.date_window[1]:+d}"
    return ScannerView(
        ae_title=p.ae_title,
        addresses=[str(n) for n in p.addresses],
        stations=None if p.stations is None else sorted(p.stations),
        unassigned=p.unassigned,
        date_window=window,
        modality=p.modality,
        hidden_statuses=sorted(hidden),
        max_answers=p.max_answers or settings.dicom_max_answers,
        over_limit="refuse" if p.refuse_over_limit else "truncate",
        sort=list(p.sort),
        character_set=p.character_set or settings.dicom_character_set,
        unrepresentable=p.unrepresentable,
        mpps_update_others=p.mpps_update_others,
        dicomweb_tokens=tokens,
        own_table=own,
    )
