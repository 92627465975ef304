"""``mwl-broker init DIR``: a site's own settings file and mapping files, ready to edit.

Writes ``DIR/broker.toml``, ``DIR/redis-key.secret`` and ``DIR/mappings/``
(``broker.services.site``), then prints the command that serves with them. It
never overwrites a file.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from broker.cli.common import Command, Subparsers
from broker.services.site import SECRET_FILE, SETTINGS_FILE, write_site

__all__ = ["COMMAND"]


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "init",
        help="write a settings file and the default mappings into DIR, for a site to edit",
        description=(
            "Write DIR/broker.toml (every setting with its default, commented), "
            f"DIR/{SECRET_FILE} (a new redis_key_secret, mode 0600) and DIR/mappings/ (a "
            "copy of the default mapping files), then print the command that serves with "
            "them. Existing files are never overwritten."
        ),
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="the site's directory (created if new)")


def run(args: argparse.Namespace) -> int:
    """Write the site's files, saying each; exit status 0."""
    secret = args.dir.resolve() / SECRET_FILE
    for path in write_site(args.dir):
        if path != secret:
            print(f"wrote {path}")
            continue
        print(
            f"wrote {path} (mode 0600: the secret that keys Redis key names; every broker on "
            "the same Redis needs it, and it must not change while the data lives)"
        )
    config = args.dir.resolve() / SETTINGS_FILE
    print(f"\nNext: mwl-broker serve --config {shlex.quote(str(config))}")
    return 0


COMMAND = Command("init", add_parser, run)
