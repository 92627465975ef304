"""Options and helpers shared by the one-off commands (``messages``, ``mapping``)."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from broker.audit.writer import CommandAudit
from broker.common.logsafety import printable
from broker.settings import Settings, load_settings
from broker.store.keys import KeySchema

__all__ = [
    "command_audit",
    "command_options",
    "command_settings",
    "print_table",
    "printable",
    "when",
]


def command_options() -> argparse.ArgumentParser:
    """A parent parser with the options that find the broker's settings and Redis."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    common.add_argument("--data-dir", type=Path, metavar="DIR", help="data directory (./data)")
    common.add_argument("--redis-url", metavar="URL", help="the broker's Redis, if not embedded")
    common.add_argument(
        "--mappings-dir", type=Path, metavar="DIR", help="the mapping files' directory (mappings)"
    )
    return common


def command_settings(args: argparse.Namespace) -> Settings:
    """Settings from ``--config``, the environment and the options of :func:`command_options`."""
    overrides = {
        "data_dir": args.data_dir,
        "redis_url": args.redis_url,
        "mappings_dir": args.mappings_dir,
    }
    return load_settings(config_file=args.config, environ=os.environ, overrides=overrides)


def command_audit(settings: Settings, client: redis.Redis, command: str) -> CommandAudit:
    """The audit trail of this command (``broker.audit``): its records name the
    operating-system user and ``command`` (as given: never the command line, which
    could hold a secret)."""
    stream = KeySchema(settings.redis_key_prefix).audit()
    return CommandAudit(client, stream, max_events=settings.audit_max_events, command=command)


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
