"""``mwl-broker migrate-keys``: the Redis key schema, checked or migrated now.

The broker migrates a Redis written before pseudonyms by itself when it starts
(``broker.store.schema_version``). This command does the same on demand,
and with ``--check`` only says what a migration would change: the schema found,
whether the key secret is the one the keys were made with, and counts by kind
(entry hashes, index sets, aliases…). It never prints a key name, an identifier
or the secret. The work is ``broker.services.keys``.
"""

from __future__ import annotations

import argparse
from collections import Counter

from broker.cli.common import Command, Subparsers, command_services
from broker.cli.options import command_options, settings_from
from broker.store.keys import SCHEMA_VERSION
from broker.store.schema_version import SchemaStatus

__all__ = ["COMMAND"]

_SECRET = {
    "same": "the keys were made with this redis_key_secret",
    "other": "the keys were made with ANOTHER redis_key_secret: the broker will not start",
    "none": "no secret recorded yet (the first start records this one)",
}


_DESCRIPTION = (
    "Convert the keys of a Redis written before key names were pseudonymised (schema 1: "
    f"Patient IDs and accession numbers in key names) to schema {SCHEMA_VERSION}, as the broker "
    "does when it starts. Safe to run again, and while a broker runs (it waits for, or "
    "finishes, a migration under way). Exit status with --check: 1 when keys would be "
    "converted or the key secret is not the one they were made with, else 0."
)


def add_parser(sub: Subparsers) -> None:
    what = "migrate Redis keys that hold identifiers to pseudonyms (or --check)"
    p = sub.add_parser("migrate-keys", parents=[command_options()], help=what)
    p.description = _DESCRIPTION
    p.add_argument("--check", action="store_true", help="report what would change; change nothing")


def run(args: argparse.Namespace) -> int:
    """Say what the key schema is; migrate it unless ``--check``."""
    settings = settings_from(args)
    with command_services(settings, "migrate-keys") as (services, label):
        print(f"Redis: {label}")
        status, counts = services.keys.check()
        _print(status, counts)
        if args.check or status.fingerprint == "other":
            return 1 if counts or status.fingerprint == "other" else 0
        if status.version != SCHEMA_VERSION:
            services.keys.migrate()  # as a starting broker does
            print(f"migrated: key schema {SCHEMA_VERSION}")
    return 0


def _print(status: SchemaStatus, counts: Counter[str]) -> None:
    current = status.version == SCHEMA_VERSION
    print(f"key schema: {status.version}" + ("" if current else " (identifiers in key names)"))
    print(f"key secret: {_SECRET.get(status.fingerprint, status.fingerprint)}")
    if current:
        print("nothing to migrate")
        return
    if not counts:
        print("would convert: nothing (no schema-1 key found)")
    for kind, n in sorted(counts.items()):
        print(f"  would convert {n} {kind}")


COMMAND = Command("migrate-keys", add_parser, run)
