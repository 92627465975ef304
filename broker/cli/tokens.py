"""``mwl-broker token``: create, list and revoke API tokens.

A token (``mwlb_<id>_<secret>``) is printed once, when it is created: the broker keeps only
a hash of its secret. Clients send it as ``Authorization: Bearer <token>``. The work is
``broker.services.auth``; each change is on the audit trail. Works while the broker runs.
"""

from __future__ import annotations

import argparse
import sys

from broker.audit.writer import os_user
from broker.cli.common import Command, Subparsers, command_services, print_table, when
from broker.cli.options import command_options, settings_from
from broker.services.auth import Role

__all__ = ["COMMAND"]


def add_parser(sub: Subparsers) -> None:
    common = command_options()
    p = sub.add_parser(
        "token",
        help="create, list or revoke API tokens",
        description="API tokens for scripts and systems: 'Authorization: Bearer <token>'.",
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create", parents=[common], help="create a token and print it (once)"
    )
    create.add_argument(
        "--role", choices=[r.value for r in Role], required=True, help="what the token may do"
    )
    create.add_argument("--label", default="", metavar="TEXT", help="what it is for (shown)")
    create.add_argument(
        "--scanner", metavar="AET", help="bind it to a scanner profile (its AE title)"
    )
    actions.add_parser("list", parents=[common], help="list the tokens (never their secrets)")
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a token at once")
    revoke.add_argument("id", metavar="ID", help="the token id shown by 'token list'")


def run(args: argparse.Namespace) -> int:
    """Run one ``token`` action; exit status 0 on success."""
    settings = settings_from(args)
    with command_services(settings, f"token {args.action}") as (services, _):
        auth, by = services.auth, os_user()
        if args.action == "create":
            text, info = auth.create_token(
                Role(args.role), label=args.label, by=by, scanner=args.scanner
            )
            print(text)
            print(f"(token {info.id}, role {info.role.value}: shown once, keep it safe)")
            if args.scanner and args.scanner not in settings.dicom_scanners:
                print(
                    _no_profile(args.scanner, settings.dicom_allow_unknown_callers), file=sys.stderr
                )
        elif args.action == "revoke":
            auth.revoke_token(args.id, by=by)
            print(f"token {args.id} revoked")
        else:
            tokens = auth.tokens()
            if not tokens:
                print("no token")
                return 0
            rows = [
                (t.id, t.role.value, t.scanner or "-", when(t.created), t.by, t.label or "-")
                for t in tokens
            ]
            print_table(("ID", "ROLE", "SCANNER", "CREATED", "BY", "LABEL"), rows)
    return 0


def _no_profile(scanner: str, allow_unknown: object) -> str:
    """The warning for a token bound to an AE title with no [scanners.<AE>] table: DICOMweb
    then scopes it as an unknown caller (the "*" profile), or refuses it."""
    if allow_unknown is False:
        then = "DICOMweb refuses it (dicom_allow_unknown_callers = false)"
    else:
        then = 'DICOMweb scopes it as an unknown caller (the [scanners."*"] profile)'
    return f"warning: no [scanners.{scanner}] table in the settings; until there is one, {then}"


COMMAND = Command("token", add_parser, run)
