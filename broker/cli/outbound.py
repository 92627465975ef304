"""``mwl-broker outbound``: the status messages for the RIS, queued and parked.

``list`` shows each destination's waiting and parked events (ids, states, statuses,
reasons: no patient data); ``show`` one event, with its message text only with
``--message`` (it holds patient data; audited); ``retry`` queues a parked event
again, with the other parked events of its order (``--all``: every parked event of the
destination); ``discard`` drops one for good, with a reason. Changes are audited.
Works while the broker runs (it shares the broker's Redis) or stopped; the work is
``broker.services.outbound``.
"""

from __future__ import annotations

import argparse

from broker.cli.common import Command, Subparsers, command_services, print_table, printable, when
from broker.cli.options import command_options, settings_from
from broker.errors import BrokerError
from broker.services.outbound import DestinationSummary, OutboundService
from broker.store.outbound import OutboundEvent

__all__ = ["COMMAND"]


def add_parser(sub: Subparsers) -> None:
    common = command_options()
    p = sub.add_parser(
        "outbound",
        help="list, show, retry or discard the status messages for the RIS",
        description=(
            "Status changes queued for [hl7_destinations] (MPPS, hand changes): waiting and "
            "parked (answered AE/CE, or not mapped). Works while the broker runs."
        ),
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("list", parents=[common], help="waiting and parked events")
    ls.add_argument("--destination", metavar="NAME", help="one destination (default: all)")
    ls.add_argument("--limit", type=int, default=50, metavar="N",
                    help="at most N waiting events per destination (default 50)")  # fmt: skip
    for name, text in (
        ("show", "show one event: its state, status, attempts and error"),
        ("retry", "queue a parked event again, with the parked events of its order"),
        ("discard", "drop a parked event for good: it is never sent"),
    ):
        action = actions.add_parser(name, parents=[common], help=text, description=text + ".")
        action.add_argument("destination", metavar="DESTINATION", help="its destination")
        action.add_argument("id", metavar="ID", nargs="?" if name == "retry" else None,
                            help="the event id shown by 'outbound list'")  # fmt: skip
        if name == "show":
            action.add_argument(
                "--message", action="store_true", help="show its message text (patient data)"
            )
        elif name == "retry":
            action.add_argument(
                "--all", action="store_true", help="every parked event of the destination"
            )
        else:
            action.add_argument("--reason", required=True, metavar="TEXT",
                                help="why (recorded on the audit trail)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run one ``outbound`` action; the exit status is 0 on success."""
    settings = settings_from(args)
    if args.action == "list" and args.limit < 1:
        raise BrokerError("--limit must be 1 or more")
    if args.action == "retry" and (args.id is None) == (not args.all):
        raise BrokerError("retry: give an event ID or --all, not both")
    if args.action == "discard" and not args.reason.strip():
        raise BrokerError("--reason: say why the event is discarded")
    with command_services(settings, f"outbound {args.action}") as (services, _):
        outbound = services.outbound
        if args.action == "list":
            return _list(outbound, args)
        if args.action == "show":
            event = outbound.show(args.destination, args.id)
            text = outbound.message(args.destination, args.id) if args.message else None
            _show(event, text)
            return 0
        if args.action == "discard":  # the audit records name the OS user
            left = outbound.discard(args.destination, args.id, reason=args.reason)
            print(f"discarded event {args.id} of {args.destination}; {held(left)}")
            return 0
        if args.all:
            count = outbound.retry_all(args.destination)
            print(f"queued again for {args.destination}: {count} parked event(s)")
            return 0
        ids = outbound.retry(args.destination, args.id)
        print(f"queued again for {args.destination}: event(s) {', '.join(ids)}")
        return 0


def held(left: list[str]) -> str:
    """What a discard leaves of its order: the events still parked behind it."""
    if not left:
        return "no other event of its order is parked: its new events are sent again"
    return (
        f"its order's event(s) {', '.join(left)} stay parked (and its new events are parked "
        "behind them): retry or discard them"
    )


def _list(outbound: OutboundService, args: argparse.Namespace) -> int:
    names = [args.destination] if args.destination else outbound.destinations()
    if not names:
        print("no [hl7_destinations] table: no status is sent back, nothing is queued")
        return 0
    for name in names:
        queue = outbound.queue(name, args.limit)
        summary = outbound.summary(name)
        print(f"{name}: {summary.waiting} waiting, {summary.parked} parked")
        print(printable(f"  {_state(summary)}"))
        rows = [_row(e) for e in (*queue.queued, *queue.parked)]
        if rows:
            print_table(("ID", "STATE", "STATUS", "SOURCE", "AT", "TRIES", "REASON"), rows)
    return 0


def _state(s: DestinationSummary) -> str:
    sending = f"sending: {s.lease_holder or 'nobody'}"
    oldest = "" if s.oldest_age is None else f"; oldest waiting {s.oldest_age:.0f} s"
    return sending + oldest + (f"; last error: {s.last_error}" if s.last_error else "")


def _row(e: OutboundEvent) -> tuple[str, ...]:
    reason = e.reason if len(e.reason) <= 80 else e.reason[:77] + "..."
    return (e.id, e.state, e.status, e.source, when(e.at), str(e.attempts), reason or "-")


def _show(e: OutboundEvent, message: str | None) -> None:
    for line in (
        f"Event {e.id}",
        f"  state        {e.state}{': ' + e.reason if e.reason else ''}",
        f"  status       {e.status} (from {e.source}, {when(e.at)})",
        f"  entry        {e.entry}",
        f"  control ID   {e.control} (MSH-10, the same on every attempt)",
        f"  attempts     {e.attempts}",
        f"  error        {e.err or '-'}",
    ):
        print(printable(line))
    if message is None:
        print("(message text: add --message; it holds patient data)")
    elif not message:
        print("(no message built yet: it is built when first sent)")
    else:
        print("Message:")
        for segment in message.split("\r"):
            print(printable(f"  {segment}"))


COMMAND = Command("outbound", add_parser, run)
