"""The ``mwl-broker`` command: the parser built from one module per command, and the
dispatch to it.

``serve`` runs the broker, ``send`` sends HL7 files over MLLP, ``messages`` lists,
shows, reprocesses and dismisses logged messages, ``mapping`` checks, previews,
publishes, rolls back and exports mapping versions, ``purge`` removes expired
entries, ``explain`` says why a scanner does (not) see an order, ``import`` loads a
DCMTK or Orthanc worklist folder, ``audit`` reads the audit trail, ``init`` writes a
site's settings file and mapping files, ``migrate-keys`` converts (or checks) the
Redis key schema, ``user`` and ``token`` manage who may use the admin console and
API, ``backup`` and ``restore`` write the data to a file and back, ``probe`` asks
the running broker whether it is alive or ready. Each command
parses its options, calls one service (``broker.services``) and prints; the options
shared by the commands are declared once (``broker.cli.options``).

Exit status: what the command returns; 2 for a configuration error, 1 for any
other error of the broker, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from broker.cli import (
    audit,
    backup,
    explain,
    importing,
    init,
    keys,
    mapping,
    messages,
    outbound,
    probe,
    purge,
    send,
    serve,
    tokens,
    users,
)
from broker.cli.common import Command
from broker.common.logsafety import configure_logging
from broker.errors import BrokerError, ConfigError

__all__ = ["COMMANDS", "build_parser", "main"]

# In the order of ``mwl-broker --help``.
COMMANDS: tuple[Command, ...] = (
    serve.COMMAND,
    send.COMMAND,
    messages.COMMAND,
    outbound.COMMAND,
    mapping.COMMAND,
    purge.COMMAND,
    explain.COMMAND,
    importing.COMMAND,
    audit.COMMAND,
    init.COMMAND,
    keys.COMMAND,
    users.COMMAND,
    tokens.COMMAND,
    backup.BACKUP,
    backup.RESTORE,
    probe.COMMAND,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mwl-broker",
        description="HL7 v2 to DICOM Modality Worklist broker.",
        epilog="Run 'mwl-broker COMMAND --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = next(c for c in COMMANDS if c.name == args.command)
    try:
        if command.log_level is not None:
            configure_logging(command.log_level)
        return command.run(args)
    except ConfigError as e:
        print(f"mwl-broker: configuration error: {e.setting}: {e.message}", file=sys.stderr)
        return 2
    except BrokerError as e:
        print(f"mwl-broker: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
