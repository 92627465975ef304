"""How a command reads a password: from the terminal (asked twice, not echoed) or from
standard input (``--password-stdin``, for scripts); never from the command line, which
other users of the host can read."""

from __future__ import annotations

import argparse
import getpass
import sys

from broker.errors import BrokerError

__all__ = ["add_password_option", "read_password"]


def add_password_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of asking",
    )


def read_password(args: argparse.Namespace, prompt: str = "Password") -> str:
    """The new password: the first line of stdin, or typed twice at the terminal."""
    if args.password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise BrokerError("--password-stdin: standard input holds no password")
        return line
    if not sys.stdin.isatty():
        raise BrokerError(
            "no terminal to ask for the password: type it at a terminal, or pipe it with "
            "--password-stdin"
        )
    first = getpass.getpass(f"{prompt}: ")
    if getpass.getpass(f"{prompt} (again): ") != first:
        raise BrokerError("the two passwords differ; nothing changed")
    return first
