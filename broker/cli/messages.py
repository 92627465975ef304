"""``mwl-broker messages``: list, show, reprocess and dismiss logged HL7 messages.

Works with the broker running (it shares the broker's Redis) or stopped (it
starts the embedded Redis for the command); see ``broker.cli.connect``. The work
is ``broker.services.messages`` and ``broker.services.reprocess``.
"""

from __future__ import annotations

import argparse

from broker.cli.common import Command, Subparsers, command_services, print_table, printable, when
from broker.cli.options import command_options, settings_from
from broker.errors import BrokerError
from broker.services.messages import MessageService, message_lines
from broker.services.reprocess import Reprocessed
from broker.store.message_records import MessageQuery, MessageRecord, MessageSummary, Outcome

__all__ = ["COMMAND"]


def add_parser(sub: Subparsers) -> None:
    common = command_options()
    p = sub.add_parser(
        "messages",
        help="list, show, reprocess or dismiss received HL7 messages",
        description=(
            "The message log: every received HL7 message with its ACK and outcome, and the "
            "error list of messages refused for their content. Works while the broker runs."
        ),
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("list", parents=[common], help="list messages, newest first")
    ls.add_argument("--errors", action="store_true", help="only messages on the error list")
    ls.add_argument(
        "--warnings",
        action="store_true",
        help="only messages answered with warnings (values cut to fit their DICOM attribute)",
    )
    ls.add_argument("--limit", type=int, default=50, metavar="N", help="at most N (default 50)")
    ls.add_argument("--type", metavar="TYPE", help="message type, e.g. ORM^O01")
    ls.add_argument("--control-id", metavar="ID", help="MSH-10 message control ID")
    ls.add_argument("--sender", metavar="APP", help="MSH-3 sending application")
    ls.add_argument("--outcome", choices=[o.value for o in Outcome], help="outcome")
    ls.add_argument("--before", type=int, metavar="ID", help="only ids below ID (next page)")
    for name, text in (
        ("show", "show one message: header, outcome, ACK and the message itself"),
        ("reprocess", "run a stored message through the current mapping and store again"),
        ("dismiss", "take a message off the error list without reprocessing it"),
    ):
        action = actions.add_parser(name, parents=[common], help=text, description=text + ".")
        action.add_argument("id", metavar="ID", help="the message id shown by 'messages list'")


def run(args: argparse.Namespace) -> int:
    """Run one ``messages`` action; the exit status is 0 on success."""
    settings = settings_from(args)
    if args.action == "list" and args.limit < 1:
        raise BrokerError("--limit must be 1 or more")
    with command_services(settings, f"messages {args.action}") as (services, _):
        messages = services.messages
        if args.action == "list":
            return _list(messages, args)
        if args.action == "show":
            _show(messages.show(args.id, view="cli"))
            return 0
        if args.action == "dismiss":
            messages.dismiss(args.id)
            print(f"message {args.id} dismissed: taken off the error list")
            return 0
        return _reprocessed(services.reprocess.reprocess(args.id))


def _sender(row: MessageSummary) -> str:
    return f"{row.sending_application}^{row.sending_facility}".rstrip("^")


def _detail(row: MessageSummary) -> str:
    if row.error is not None:
        where = f" {row.error.location}" if row.error.location else ""
        text = f"{row.error.err_code}{where}: {row.error.text}"
    elif row.outcome is Outcome.DUPLICATE:
        text = "resend; answered with the first ACK, nothing changed"
    elif row.outcome is Outcome.OUT_OF_ORDER:
        text = (
            "older (MSH-7) than a message already applied: skipped for that order or patient; "
            f"{row.created} entries written, {row.removed} removed"
        )
    else:
        text = f"{row.created} entries written, {row.removed} removed"
    if row.warnings:
        text += f"; {row.warnings} warning(s): value(s) cut to fit"
    if row.on_error_list:
        text = "[on error list] " + text
    elif row.resolution:
        text = f"[{row.resolution}] " + text
    return text if len(text) <= 100 else text[:97] + "..."


def _list(messages: MessageService, args: argparse.Namespace) -> int:
    query = MessageQuery(
        errors_only=args.errors,
        warnings_only=args.warnings,
        outcome=Outcome(args.outcome) if args.outcome else None,
        message_type=args.type,
        sending_application=args.sender,
        control_id=args.control_id,
        before_id=args.before,
        limit=args.limit,
    )
    page = messages.find(query)
    if not page.items:
        print("no error waiting" if args.errors else "no message found")
        return 0
    if args.warnings:
        print(
            f"({messages.count(warnings_only=True)} message(s) in the log answered with warnings)"
        )
    header = ("ID", "RECEIVED", "OUTCOME", "ACK", "TYPE", "CONTROL ID", "SENDER", "DETAIL")
    rows = [
        (r.id, when(r.received_at), r.outcome.value, r.ack_code, r.message_type,
         r.control_id, _sender(r), _detail(r))
        for r in page.items
    ]  # fmt: skip
    print_table(header, rows)
    if page.next_before is not None:
        print(f"(more: add --before {page.next_before})")
    return 0


def _show(record: MessageRecord) -> None:
    """One logged message; everything the sender wrote is shown :func:`printable`."""
    s = record.summary
    _say(f"Message {s.id}")
    _say(f"  received     {when(s.received_at)} from {s.peer}")
    _say(f"  sender       {_sender(s) or '-'} (MSH-3^MSH-4)")
    _say(f"  type         {s.message_type or '-'}  control ID {s.control_id or '-'}  "
         f"version {record.version or '-'}")  # fmt: skip
    _say(f"  outcome      {s.outcome.value}, answered {s.ack_code}")
    if s.error is not None:
        where = f" at {s.error.location}" if s.error.location else ""
        _say(f"  error        {s.error.ack_code} {s.error.err_code}{where}: {s.error.text}")
    for warning in record.warnings:
        where = f" at {warning.location}" if warning.location else ""
        _say(f"  warning      W {warning.err_code}{where}: {warning.text}")
    if s.on_error_list:
        _say("  error list   waiting: 'messages reprocess' or 'messages dismiss'")
    elif s.resolution:
        _say(f"  error list   {s.resolution}")
    if record.mapping_name:
        _say(f"  mapping      {record.mapping_name} (version {record.mapping_version})")
    if record.order_keys:
        _say(f"  orders       {', '.join(record.order_keys)}")
    if record.entry_ids or s.created or s.removed:
        _say(f"  entries      {s.created} written, {s.removed} removed; "
             f"ids {', '.join(record.entry_ids) or '-'}")  # fmt: skip
    _say("ACK sent:")
    for line in message_lines(record.ack, record.charset):
        _say(f"  {line}")
    size = f"{len(record.raw)} bytes"
    if record.raw_size > len(record.raw):
        size = f"the first {len(record.raw)} of {record.raw_size} bytes kept"
    _say(f"Message ({size}, {record.charset or 'not decoded; shown as latin-1'}):")
    for line in message_lines(record.raw, record.charset):
        _say(f"  {line}")


def _say(line: str) -> None:
    print(printable(line))


def _reprocessed(done: Reprocessed) -> int:
    """What a reprocess gave: the new id, the ACK, and whether the error list changed."""
    old, summary = done.original.summary, done.summary
    new_id = done.new_id or "(not recorded)"
    print(
        f"message {old.id} reprocessed as message {new_id}: {summary.code} {summary.text}".rstrip()
    )
    for err in summary.errors:
        print(f"  ERR {err}")
    print("ACK:")
    for line in message_lines(done.ack, done.original.charset):
        print(f"  {line}")
    if not summary.accepted:
        if old.on_error_list:
            print(f"message {old.id} stays on the error list")
        return 1
    if done.resolved:
        print(f"message {old.id} taken off the error list")
    return 0


COMMAND = Command("messages", add_parser, run)
