"""``mwl-broker messages``: list, show, reprocess and dismiss logged HL7 messages.

Works with the broker running (it shares the broker's Redis) or stopped (it
starts the embedded Redis for the command); see ``broker.cli.connect``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from broker.audit import events as audit
from broker.cli.common import (
    command_audit,
    command_options,
    command_settings,
    print_table,
    printable,
    when,
)
from broker.cli.connect import CommandRedis, redis_for_command
from broker.errors import BrokerError
from broker.settings import Settings
from broker.store.message_records import (
    Intake,
    MessageQuery,
    MessageRecord,
    MessageSummary,
    Outcome,
)
from broker.store.msglog import MessageLog
from broker.store.steps import Steps
from broker.worklist.model import LogRecord

__all__ = ["add_messages_parser", "run_messages"]

_ACCEPTED = {"AA", "CA"}


def add_messages_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def run_messages(args: argparse.Namespace) -> int:
    """Run one ``messages`` action; the exit status is 0 on success."""
    settings = command_settings(args)
    if args.action == "list" and args.limit < 1:
        raise BrokerError("--limit must be 1 or more")
    with redis_for_command(settings) as conn:
        mlog = _message_log(settings, conn)
        if args.action == "list":
            return _list(mlog, args)
        if args.action == "show":
            _show(_get(mlog, args.id))
            return 0
        if args.action == "dismiss":
            if not mlog.dismiss(args.id):
                _get(mlog, args.id)  # says so if the id is unknown
                raise BrokerError(f"message {args.id} is not on the error list")
            dismissed = audit.AuditEvent(audit.AuditType.MESSAGE_DISMISS, target=args.id)
            command_audit(settings, conn.client, "messages dismiss").record(dismissed)
            print(f"message {args.id} dismissed: taken off the error list")
            return 0
        return _reprocess(settings, conn, mlog, _get(mlog, args.id))


def _message_log(settings: Settings, conn: CommandRedis) -> MessageLog:
    from broker.app import build_message_log

    return build_message_log(settings, conn.client)


def _get(mlog: MessageLog, message_id: str) -> MessageRecord:
    record = mlog.get(message_id)
    if record is None:
        raise BrokerError(
            f"no message {message_id} in the message log (unknown id, or past retention)"
        )
    return record


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


def _list(mlog: MessageLog, args: argparse.Namespace) -> int:
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
    page = mlog.find(query)
    if not page.items:
        print("no error waiting" if args.errors else "no message found")
        return 0
    if args.warnings:
        print(f"({mlog.count(warnings_only=True)} message(s) in the log answered with warnings)")
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


def _segments(data: bytes, charset: str) -> list[str]:
    try:
        text = data.decode(charset or "latin-1")
    except (LookupError, UnicodeDecodeError):
        text = data.decode("latin-1")
    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    return [line for line in lines if line]


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
    for line in _segments(record.ack, record.charset):
        _say(f"  {line}")
    size = f"{len(record.raw)} bytes"
    if record.raw_size > len(record.raw):
        size = f"the first {len(record.raw)} of {record.raw_size} bytes kept"
    _say(f"Message ({size}, {record.charset or 'not decoded; shown as latin-1'}):")
    for line in _segments(record.raw, record.charset):
        _say(f"  {line}")


def _say(line: str) -> None:
    print(printable(line))


class _Reprocessing:
    """Records the reprocessed message as such, and remembers the id it got."""

    def __init__(self, inner: MessageLog, original_id: str) -> None:
        self.inner = inner
        self.original_id = original_id
        self.message_id = ""

    def record_steps(self, intake: Intake) -> Steps[str]:
        inner = self.inner.record_steps(replace(intake, reprocess_of=self.original_id))
        self.message_id = yield from inner
        return self.message_id

    def applied_record(self, intake: Intake) -> LogRecord:
        return self.inner.applied_record(replace(intake, reprocess_of=self.original_id))

    def written(self, message_id: str) -> None:
        self.message_id = message_id


def _reprocess(
    settings: Settings, conn: CommandRedis, mlog: MessageLog, original: MessageRecord
) -> int:
    """The stored bytes through the same router code path as a received message."""
    from broker.app import build_store, router_config
    from broker.mllp.client import summarize_ack
    from broker.services.routing import HL7Router
    from broker.store.keys import KeySchema
    from broker.store.mapping_live import LiveMappings
    from broker.store.mapping_versions import MappingVersions

    versions = MappingVersions(conn.client, KeySchema(settings.redis_key_prefix))
    live = LiveMappings(versions, settings.mappings_dir)
    live.load()  # the active version, as the broker maps with it
    registry = live.current()
    old = original.summary
    capture = _Reprocessing(mlog, old.id)
    router = HL7Router(
        build_store(settings, conn.client),
        lambda: registry,
        router_config(settings),
        recorder=capture,
    )
    ack = router.handle(original.raw, f"reprocess of message {old.id}")
    summary = summarize_ack(ack)
    new_id = capture.message_id or "(not recorded)"
    command_audit(settings, conn.client, "messages reprocess").record(
        audit.AuditEvent(
            audit.AuditType.MESSAGE_REPROCESS,
            audit.Outcome.SUCCESS if summary.code in _ACCEPTED else audit.Outcome.FAILED,
            target=old.id,
            details={"ack": summary.code, "new_id": capture.message_id},
        )
    )
    print(
        f"message {old.id} reprocessed as message {new_id}: {summary.code} {summary.text}".rstrip()
    )
    for err in summary.errors:
        print(f"  ERR {err}")
    print("ACK:")
    for line in _segments(ack, original.charset):
        print(f"  {line}")
    if summary.code not in _ACCEPTED:
        if old.on_error_list:
            print(f"message {old.id} stays on the error list")
        return 1
    if mlog.resolve(old.id, f"reprocessed as message {new_id}, {summary.code}"):
        print(f"message {old.id} taken off the error list")
    return 0
