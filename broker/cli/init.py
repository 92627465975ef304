"""``mwl-broker init DIR``: a site's own settings file and mapping files, ready to edit.

Writes ``DIR/broker.toml``, ``DIR/redis-key.secret`` and ``DIR/mappings/``
(``broker.services.site``), then prints the command that serves with them. It
never overwrites a file. At a terminal it offers to add the admin console's first
admin (user name and password typed, nothing echoed); otherwise it prints the command
that does. There is no default user and no default password.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from broker.audit.writer import os_user
from broker.cli.common import Command, Subparsers, command_services
from broker.cli.passwords import read_password
from broker.services.auth import Role
from broker.services.site import SECRET_FILE, SETTINGS_FILE, write_site
from broker.settings import load_settings

__all__ = ["COMMAND"]


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "init",
        help="write a settings file and the default mappings into DIR, for a site to edit",
        description=(
            "Write DIR/broker.toml (every setting with its default, commented), "
            f"DIR/{SECRET_FILE} (a new redis_key_secret, mode 0600) and DIR/mappings/ (a "
            "copy of the default mapping files), then print the command that serves with "
            "them. Existing files are never overwritten. At a terminal it then asks for the "
            "admin console's first admin (user name, password twice); otherwise it prints the "
            "'mwl-broker user add' command to run."
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
    quoted = shlex.quote(str(config))
    if not (sys.stdin.isatty() and _first_admin(config)):
        print(
            "\nThe admin console has no user yet (and no default password). Add the first "
            f"admin with:\n  mwl-broker user add NAME --role admin --config {quoted}"
        )
    print(f"\nNext: mwl-broker serve --config {quoted}")
    return 0


def _first_admin(config: Path) -> bool:
    """Ask for the first admin at the terminal; whether one exists afterwards."""
    settings = load_settings(config_file=config, environ=os.environ)
    with command_services(settings, "init") as (services, _):
        if services.auth.has_users():
            return True
        name = input("\nThe admin console's first admin (user name; empty: later): ").strip()
        if not name:
            return False
        password = read_password(argparse.Namespace(password_stdin=False))
        services.auth.add_user(name, password, Role.ADMIN, by=os_user())
        print(f"user {name} added, role admin")
        return True


COMMAND = Command("init", add_parser, run)
