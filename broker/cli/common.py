"""What the ``mwl-broker`` commands share: the shape of a command, the services of a
one-off command on the broker's Redis, and how tables and times are printed."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import redis

from broker.audit.writer import CommandAudit
from broker.cli.connect import redis_for_command
from broker.common.logsafety import printable
from broker.settings import Settings
from broker.store.keys import KeySchema

if TYPE_CHECKING:
    from broker.services.application import Services

__all__ = [
    "Command",
    "Subparsers",
    "command_audit",
    "command_services",
    "print_table",
    "printable",
    "when",
]

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


@dataclass(frozen=True)
class Command:
    """One ``mwl-broker`` command: how its parser is declared and what runs it.

    ``log_level``: the one-off commands log warnings only, so their output is
    theirs; None for a command that sets up logging itself (``serve``) or not at all.
    """

    name: str
    add_parser: Callable[[Subparsers], None]
    run: Callable[[argparse.Namespace], int]
    log_level: str | None = "WARNING"


def command_audit(settings: Settings, client: redis.Redis, command: str) -> CommandAudit:
    """The audit trail of this command (``broker.audit``): its records name the
    operating-system user and ``command`` (as given: never the command line, which
    could hold a secret)."""
    stream = KeySchema(settings.redis_key_prefix).audit()
    return CommandAudit(client, stream, max_events=settings.audit_max_events, command=command)


@contextlib.contextmanager
def command_services(settings: Settings, command: str) -> Iterator[tuple[Services, str]]:
    """The application's services on the broker's Redis for the duration of ``command``
    (``broker.cli.connect``), recording on its audit trail; and where that Redis is."""
    from broker.app import build_services  # the composition root, which imports every server

    with redis_for_command(settings) as conn:
        audit = command_audit(settings, conn.client, command)
        yield build_services(settings, conn.client, audit), conn.label


def when(epoch: float) -> str:
    """Local time, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell; the last column is left as it is. Cells are
    shown :func:`printable`."""
    table = [header, *(tuple(printable(cell) for cell in row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
