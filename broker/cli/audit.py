"""``mwl-broker audit``: read the audit trail, newest first (``broker.audit``).

A table for a person, or ``--json``: one JSON object per line, for a script. What a
peer sent (an AE title, an MSH-10) was made printable when it was recorded; the
table escapes again, and JSON escapes every control character. The ``phi`` field
(query values, recorded only with ``log_phi = true``) is shown with ``--phi`` only.
Reading the trail is itself recorded (PS3.15 A.5.3.2 Audit Log Used:
``broker.services.audit_trail``). Works with the broker running or stopped
(``broker.cli.connect``).
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Mapping
from typing import Any

from broker.audit.events import AuditEvent, AuditType, StoredEvent, iso_time, readable_key
from broker.audit.stream import AuditFilter
from broker.cli.common import Command, Subparsers, command_services, print_table, when
from broker.cli.options import command_options, settings_from
from broker.common import jsontext
from broker.common.clock import SYSTEM_CLOCK
from broker.common.netaddr import parse_network
from broker.errors import BrokerError

__all__ = ["COMMAND", "parse_since"]

_AGO = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DATE_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
_DETAIL_MAX = 120


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "audit",
        parents=[command_options()],
        help="read the audit trail: refusals, queries, MPPS, mapping and command events",
        description=(
            "The audit trail, newest first: connections and associations refused or "
            "accepted, every C-FIND (caller, key names, answers), MPPS changes, HL7 messages "
            "refused at the door, mapping publishes and rollbacks, reprocess, purge and "
            "import with the operating-system user. Works while the broker runs."
        ),
    )
    p.add_argument(
        "--since",
        metavar="WHEN",
        help="only records since WHEN: an age (30m, 2h, 7d) or a local time (2026-12-04, "
        "2026-12-04T08:00)",
    )
    p.add_argument(
        "--type",
        action="append",
        choices=[t.value for t in AuditType],
        metavar="TYPE",
        help="only this type (repeat for several): " + ", ".join(t.value for t in AuditType),
    )
    p.add_argument("--ae", metavar="AET", help="only this calling AE title")
    p.add_argument("--address", metavar="ADDR", help="only this peer address or network")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--phi", action="store_true", help="also show query values recorded with log_phi"
    )


def parse_since(text: str, now: float | None = None) -> float:
    """``--since``: an age (``90s``, ``30m``, ``2h``, ``7d``) or a local date and time."""
    now = SYSTEM_CLOCK.now() if now is None else now
    value = text.strip()
    match = _AGO.match(value)
    if match:
        return now - int(match[1]) * _UNIT[match[2]]
    for form in (*_DATE_FORMATS, "%Y-%m-%d"):
        try:
            return time.mktime(time.strptime(value, form))
        except ValueError:
            continue
    raise BrokerError(
        f"--since {value[:40]!r}: give an age (30m, 2h, 7d) or a local time "
        "(2026-12-04 or 2026-12-04T08:00)"
    )


def _filter(args: argparse.Namespace) -> AuditFilter:
    if args.limit < 1:
        raise BrokerError("--limit must be 1 or more")
    network = None
    if args.address:
        try:
            network = parse_network(args.address)
        except ValueError as e:
            raise BrokerError(f"--address: {e}") from None
    return AuditFilter(
        since=parse_since(args.since) if args.since else None,
        types=frozenset(AuditType(t) for t in args.type or ()),
        ae=args.ae,
        network=network,
    )


def run(args: argparse.Namespace) -> int:
    """Print the records asked for; exit status 0."""
    wanted = _filter(args)
    settings = settings_from(args)
    asked = {
        name: value
        for name, value in (
            ("since", args.since), ("type", args.type), ("ae", args.ae),
            ("address", args.address), ("phi", args.phi or None),
        )
        if value
    }  # fmt: skip
    with command_services(settings, "audit") as (services, _):
        found = services.audit_trail.read(wanted, limit=args.limit, asked=asked)
    if args.json:
        for stored in found:
            print(jsontext.ascii_only(_as_json(stored, args.phi)))
        return 0
    if not found:
        print("no audit record found")
        return 0
    header = ("TIME", "TYPE", "OUTCOME", "AE", "ADDRESS", "WHO", "TARGET", "DETAIL")
    rows = [
        (when(e.time), e.type.value, e.outcome.value, e.ae or "-", e.address or "-",
         e.user or e.sender or "-", e.target or "-", _detail(e, args.phi))
        for e in (s.event for s in found)
    ]  # fmt: skip
    print_table(header, rows)
    if len(found) == args.limit:
        print(f"(the newest {args.limit}; --limit or --since for others)")
    return 0


def _as_json(stored: StoredEvent, phi: bool) -> dict[str, Any]:
    e = stored.event
    record: dict[str, Any] = {"id": stored.id, "time": iso_time(e.time), "type": e.type.value}
    record["outcome"] = e.outcome.value
    for name in ("address", "ae", "user", "sender", "target", "reason", "node"):
        if getattr(e, name):
            record[name] = getattr(e, name)
    if e.details:
        record["details"] = dict(e.details)
    if phi and e.phi:
        record["phi"] = dict(e.phi)
    return record


def _short(name: str, value: Any) -> str:
    if name == "keys" and isinstance(value, list):  # a C-FIND's, by tag: by keyword here
        return " ".join(readable_key(str(v)) for v in value)
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def _detail(event: AuditEvent, phi: bool) -> str:
    """The reason, then the details as ``name=value`` (values of ``phi`` with ``--phi``)."""
    parts = [event.reason] if event.reason else []
    details: Mapping[str, Any] = event.details
    parts += [f"{name}={_short(name, v)}" for name, v in details.items() if name != "command"]
    if phi and event.phi:
        parts += [f"{readable_key(name)}={value!r}" for name, value in event.phi.items()]
    text = "; ".join(parts) or "-"
    return text if len(text) <= _DETAIL_MAX or phi else text[: _DETAIL_MAX - 3] + "..."


COMMAND = Command("audit", add_parser, run)
