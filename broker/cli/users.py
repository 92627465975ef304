"""``mwl-broker user``: add, list, disable, enable the admin console's users, set a password.

Passwords are typed at the terminal or read from standard input (``--password-stdin``),
never taken from the command line. The work is ``broker.services.auth``; each change is on
the audit trail with the operating-system user who made it. Works while the broker runs.
"""

from __future__ import annotations

import argparse

from broker.audit.writer import os_user
from broker.cli.common import Command, Subparsers, command_services, print_table, when
from broker.cli.options import command_options, settings_from
from broker.cli.passwords import add_password_option, read_password
from broker.services.auth import Role

__all__ = ["COMMAND"]


def add_parser(sub: Subparsers) -> None:
    common = command_options()
    p = sub.add_parser(
        "user",
        help="add, list, disable or enable admin console users; set a password",
        description="The admin console's users and their roles (viewer < editor < admin).",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", parents=[common], help="add a user (asks for a password)")
    add.add_argument("name", metavar="NAME", help="the login: letters, digits, . _ @ -")
    add.add_argument(
        "--role",
        choices=[r.value for r in Role],
        required=True,
        help="viewer (reads), editor (also changes mappings and messages), admin (everything)",
    )
    add_password_option(add)
    passwd = actions.add_parser(
        "passwd", parents=[common], help="set a user's password (ends the user's sessions)"
    )
    passwd.add_argument("name", metavar="NAME")
    add_password_option(passwd)
    for name, text in (
        ("disable", "disable a user: no login, sessions ended"),
        ("enable", "enable a disabled user again"),
    ):
        action = actions.add_parser(name, parents=[common], help=text, description=text + ".")
        action.add_argument("name", metavar="NAME")
    actions.add_parser("list", parents=[common], help="list the users and their roles")


def run(args: argparse.Namespace) -> int:
    """Run one ``user`` action; exit status 0 on success."""
    settings = settings_from(args)
    password = read_password(args) if args.action in ("add", "passwd") else ""
    with command_services(settings, f"user {args.action}") as (services, _):
        auth, by = services.auth, os_user()
        if args.action == "add":
            auth.add_user(args.name, password, Role(args.role), by=by)
            print(f"user {args.name} added, role {args.role}")
        elif args.action == "passwd":
            auth.set_password(args.name, password, by=by)
            print(f"password of {args.name} set; the user's sessions ended")
        elif args.action in ("disable", "enable"):
            auth.set_disabled(args.name, args.action == "disable", by=by)
            print(f"user {args.name} {args.action}d")
        else:
            users = auth.users()
            if not users:
                print("no user yet: add one with 'mwl-broker user add NAME --role admin'")
                return 0
            rows = [
                (u.name, u.role.value, "disabled" if u.disabled else "enabled", when(u.created),
                 when(u.last_login) if u.last_login else "never")
                for u in users
            ]  # fmt: skip
            print_table(("USER", "ROLE", "STATE", "CREATED", "LAST LOGIN"), rows)
    return 0


COMMAND = Command("user", add_parser, run)
