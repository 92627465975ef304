"""``mwl-broker mapping``: check, preview, publish and roll back mapping versions.

``check`` works on files alone; the others work on the versions kept in the
broker's Redis (``broker.store.mapping_versions``), also while the broker runs: a
published version is active on every broker at once. The work is
``broker.services.mappings``.
"""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
from pathlib import Path

from broker.cli.common import Command, Subparsers, command_services, print_table, when
from broker.cli.options import command_options, settings_from
from broker.errors import BrokerError
from broker.services.mappings import (
    ExportReport,
    MappingService,
    check_mapping_files,
    read_texts,
)
from broker.services.preview import render
from broker.store.mapping_versions import PublishResult

__all__ = ["COMMAND"]


def add_parser(sub: Subparsers) -> None:
    common = command_options()
    p = sub.add_parser(
        "mapping",
        help="check, publish, roll back and export the HL7-to-worklist mappings",
        description=(
            "Mapping files are validated, then published as numbered versions in the broker's "
            "Redis; the active version is used by every broker at once, without a restart. "
            "The files in the mappings directory seed version 1."
        ),
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    _check_parser(actions)
    _preview_parser(actions, common)
    _history_parser(actions, common)
    _diff_parser(actions, common)
    _publish_parser(actions, common)
    _rollback_parser(actions, common)
    _export_parser(actions, common)


def _check_parser(actions: Subparsers) -> None:
    check = actions.add_parser(
        "check",
        help="validate mapping files (no Redis needed)",
        description="Validate mapping files, alone and as one set; exit status 1 on any error.",
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE", help="mapping files")


def _preview_parser(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    pv = actions.add_parser(
        "preview",
        parents=[common],
        help="show what a message would become: entries, a trace of every value, stations",
        description=(
            "Map the messages of FILE with the active mapping version (or with it and the "
            "--mapping files put in place of theirs) and print each resulting worklist entry "
            "as a DICOM dump, where every value came from, and which stations would see it. "
            "Nothing is stored. Exit status 1 if a message would be refused."
        ),
    )
    pv.add_argument("message", type=Path, metavar="MESSAGE", help="HL7 message file")
    pv.add_argument(
        "--mapping", type=Path, nargs="+", default=[], metavar="FILE", help="edited mapping files"
    )
    pv.add_argument(
        "--peer",
        default="",
        metavar="ADDR",
        help="decode as if sent from this address: the charset and time zone of the "
        "[hl7_senders] table that lists it apply (default: no sender's table)",
    )


def _history_parser(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    history = actions.add_parser("history", parents=[common], help="list published versions")
    history.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (20)")


def _diff_parser(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    d = actions.add_parser(
        "diff",
        parents=[common],
        help="show what changed between versions, or between the active one and files",
        description=(
            "With no VERSION: the active version against the one it replaced. With one: that "
            "version against the active one. With two: the first against the second. With "
            "--dir: the active version against the files of DIR (what publishing them changes)."
        ),
    )
    d.add_argument("versions", nargs="*", type=int, metavar="VERSION")
    d.add_argument("--dir", type=Path, metavar="DIR", help="compare with the files of DIR")


def _publish_parser(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    pub = actions.add_parser(
        "publish",
        parents=[common],
        help="validate and publish mapping files as the new active version",
        description=(
            "With FILEs: they replace (or add) those files in the active set. With --dir, or "
            "no FILE: the .yaml files of DIR (default: mappings_dir, else the set shipped with "
            "mwl-broker) become the whole set. Nothing is published unless the whole set "
            "validates."
        ),
    )
    pub.add_argument("files", nargs="*", type=Path, metavar="FILE")
    pub.add_argument("--dir", type=Path, metavar="DIR", help="publish every .yaml file of DIR")
    _who(pub)


def _rollback_parser(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    rb = actions.add_parser(
        "rollback", parents=[common], help="publish an earlier version's files again"
    )
    rb.add_argument("version", type=int, metavar="VERSION")
    _who(rb)


def _export_parser(actions: Subparsers, common: argparse.ArgumentParser) -> None:
    ex = actions.add_parser(
        "export", parents=[common], help="write the active (or a given) version to files"
    )
    ex.add_argument("--to", type=Path, metavar="DIR", help="directory (default: mappings_dir)")
    ex.add_argument("--version", type=int, metavar="N", help="version to export (active)")
    ex.add_argument(
        "--prune", action="store_true", help="also delete .yaml files that are not in the version"
    )


def _who(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--comment", default="", help="why: kept in the history")
    parser.add_argument("--author", help="who (default: user@host)")
    parser.add_argument(
        "--expect",
        type=int,
        metavar="N",
        help="refuse if the active version is no longer N (someone published meanwhile)",
    )


def run(args: argparse.Namespace) -> int:
    """Run one ``mapping`` action; the exit status is 0 on success."""
    if args.action == "check":
        return _check(args.files)
    settings = settings_from(args)
    with command_services(settings, f"mapping {args.action}") as (services, _):
        mappings = services.mappings
        if args.action == "history":
            return _history(mappings, args.limit)
        if args.action == "preview":
            return _preview(mappings, args)
        if args.action == "diff":
            return _diff(mappings, args)
        if args.action == "export":
            _exported(mappings.export(args.version, args.to, prune=args.prune))
            return 0
        author = args.author or f"{getpass.getuser()}@{socket.gethostname()}"
        if args.action == "rollback":
            result = mappings.rollback(args.version, author=author, comment=args.comment)
        else:
            if args.files and args.dir is not None:
                raise BrokerError("give either FILEs or --dir, not both")
            edited = read_texts(args.files)
            result = mappings.publish(
                edited, args.dir, author=author, comment=args.comment, expect=args.expect
            )
        _said(result)
        return 0


def _check(paths: list[Path]) -> int:
    checked = check_mapping_files(paths)
    for file in checked.files:
        if file.error is not None:
            print(file.error, file=sys.stderr)
        else:
            types = ", ".join(file.message_types) or "the status messages sent back (outbound)"
            print(f"{file.path}: ok: mapping {file.name!r} for {types}")
    if checked.set_error is not None:
        print(f"the files as one set: {checked.set_error}", file=sys.stderr)
    return 1 if checked.failed else 0


def _history(mappings: MappingService, limit: int) -> int:
    if limit < 1:
        raise BrokerError("--limit must be 1 or more")
    versions, active = mappings.history(limit)
    rows = []
    for v in versions:
        mark = "*" if v.number == active else ""
        files = ", ".join(sorted(v.files))
        rows.append((f"{mark}v{v.number}", when(v.created), v.author, files, v.comment))
    if not rows:
        print("no mapping version published yet")
        return 0
    print_table(("VERSION", "PUBLISHED", "BY", "FILES", "COMMENT"), rows)
    print("(* = active)")
    return 0


def _diff(mappings: MappingService, args: argparse.Namespace) -> int:
    numbers: list[int] = args.versions
    if len(numbers) > 2:
        raise BrokerError("give at most two versions")
    if args.dir is not None and numbers:
        raise BrokerError("give either versions or --dir, not both")
    found = mappings.diff(numbers, args.dir)
    if not found.old:
        print(f"{found.new} is the first version: nothing to compare it with")
        return 0
    print(found.text, end="" if found.text else "no difference\n")
    return 0


def _preview(mappings: MappingService, args: argparse.Namespace) -> int:
    edited = read_texts(args.mapping)
    try:
        data = args.message.read_bytes()
    except OSError as e:
        raise BrokerError(f"{args.message}: cannot read: {e.strerror}") from e
    shown = mappings.preview(data, str(args.message), edited, args.peer)
    print(f"Mappings: {shown.label}")
    for result in shown.results:
        print(render(result))
    return 1 if shown.refused else 0


def _said(result: PublishResult) -> None:
    v = result.version
    if result.created:
        print(f"published {v.label}: active on every broker now ({', '.join(sorted(v.files))})")
    else:
        print(f"nothing published: the active {v.label} already has exactly these files")


def _exported(report: ExportReport) -> None:
    number = report.version.number
    shown = {
        "deleted": f"deleted (not in v{number})",
        "kept": f"not in v{number}, left in place (--prune deletes it)",
    }
    for path, what in report.files:
        print(f"{path}: {shown.get(what, what)}")
    print(f"exported {report.version.label} to {report.target}")


COMMAND = Command("mapping", add_parser, run)
