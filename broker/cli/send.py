"""``mwl-broker send HOST:PORT FILE...``: send HL7 message files over MLLP, print each ACK.

Messages go one at a time (``broker.mllp.client``); each ACK is printed as MSA-1,
MSA-2 and any ERR (``broker.hl7.ack_summary``). Exit status 1 if any message was
not accepted, or a file could not be read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from broker.cli.common import Command, Subparsers
from broker.errors import ConfigError
from broker.hl7.ack_summary import summarize_ack
from broker.hl7.files import split_messages
from broker.mllp.client import MLLPClient

__all__ = ["COMMAND"]


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "send",
        help="send HL7 message files over MLLP and print each ACK",
        description=(
            "Send every message in FILE... (CR, LF or CRLF segment separators; several "
            "messages per file allowed) to HOST:PORT over MLLP, one at a time, and print each "
            "ACK: MSA-1, MSA-2 and any ERR. Exit status 1 if any message was not accepted."
        ),
    )
    p.add_argument("address", metavar="HOST:PORT", help="the MLLP listener, e.g. localhost:2575")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="HL7 message files")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each ACK")


def run(args: argparse.Namespace) -> int:
    """Send each file's messages; the exit status is 1 on any failure."""
    host, sep, port_text = args.address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ConfigError("HOST:PORT", f"{args.address!r} is not HOST:PORT")
    failures = 0
    with MLLPClient(host or "localhost", int(port_text), timeout=args.timeout) as client:
        for path in args.files:
            messages = _messages(path)
            if messages is None:
                failures += 1
                continue
            for n, message in enumerate(messages, start=1):
                label = f"{path}" if len(messages) == 1 else f"{path}#{n}"
                failures += not _send(client, message, label)
    return 1 if failures else 0


def _messages(path: Path) -> list[bytes] | None:
    """The messages of ``path``; None (said) when it cannot be read or holds none."""
    try:
        data = path.read_bytes()
    except OSError as e:
        print(f"{path}: cannot read: {e.strerror}")
        return None
    try:
        messages = split_messages(data)
    except ValueError as e:
        print(f"{path}: not an HL7 message file: {e}")
        return None
    if not messages:
        print(f"{path}: no HL7 message found")
        return None
    return messages


def _send(client: MLLPClient, message: bytes, label: str) -> bool:
    """Send one message and print its ACK; True when it was accepted."""
    try:
        summary = summarize_ack(client.send(message))
    except ValueError as e:
        print(f"{label}: the answer is not an HL7 ACK: {e}")
        return False
    line = f"{label}: {summary.code} {summary.control_id}"
    if summary.text:
        line += f" {summary.text}"
    print(line)
    for err in summary.errors:
        print(f"  ERR {err}")
    return summary.accepted


COMMAND = Command("send", add_parser, run, log_level=None)
