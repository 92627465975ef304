"""``mwl-broker mapping``: check, preview, publish and roll back mapping versions.

``check`` works on files alone; the others work on the versions kept in the
broker's Redis (``broker.store.mapping_versions``), also while the broker runs: a
published version is active on every broker at once.
"""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
from pathlib import Path

from broker.cli.common import command_audit, command_options, command_settings, print_table, when
from broker.cli.connect import redis_for_command
from broker.errors import BrokerError, ConfigError
from broker.mapping.registry import MappingRegistry
from broker.settings import Settings
from broker.store.keys import KeySchema
from broker.store.mapping_versions import (
    MappingVersion,
    MappingVersions,
    PublishResult,
    check_file_name,
    diff,
    read_mapping_dir,
    seed_mapping_files,
)

__all__ = ["add_mapping_parser", "run_mapping"]


def add_mapping_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _check_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = actions.add_parser(
        "check",
        help="validate mapping files (no Redis needed)",
        description="Validate mapping files, alone and as one set; exit status 1 on any error.",
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE", help="mapping files")


def _preview_parser(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
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


def _history_parser(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    history = actions.add_parser("history", parents=[common], help="list published versions")
    history.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (20)")


def _diff_parser(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
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


def _publish_parser(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
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


def _rollback_parser(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    rb = actions.add_parser(
        "rollback", parents=[common], help="publish an earlier version's files again"
    )
    rb.add_argument("version", type=int, metavar="VERSION")
    _who(rb)


def _export_parser(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
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


def run_mapping(args: argparse.Namespace) -> int:
    """Run one ``mapping`` action; the exit status is 0 on success."""
    if args.action == "check":
        return _check(args.files)
    settings = command_settings(args)
    with redis_for_command(settings) as conn:
        audit = command_audit(settings, conn.client, f"mapping {args.action}")
        versions = MappingVersions(conn.client, KeySchema(settings.redis_key_prefix), audit)
        if args.action == "history":
            return _history(versions, args.limit)
        if args.action == "preview":
            return _preview(versions, settings, args)
        if args.action == "diff":
            return _diff(versions, settings, args)
        if args.action == "export":
            return _export(versions, settings, args)
        author = args.author or f"{getpass.getuser()}@{socket.gethostname()}"
        if args.action == "rollback":
            result = versions.rollback(args.version, author=author, comment=args.comment)
        else:
            files = _files_to_publish(versions, settings, args)
            result = versions.publish(
                files, author=author, comment=args.comment, expect=args.expect
            )
        _said(result)
        return 0


def _check(paths: list[Path]) -> int:
    files: dict[str, str] = {}
    failed = False
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
            registry = MappingRegistry.from_texts({path.name: text})
        except (OSError, UnicodeDecodeError) as e:
            print(f"{path}: cannot read: {e}", file=sys.stderr)
            failed = True
            continue
        except ConfigError as e:
            print(f"{e.setting}: {e.message}", file=sys.stderr)
            failed = True
            continue
        files[path.name] = text
        (spec,) = registry.specs
        print(f"{path}: ok: mapping {spec.name!r} for {', '.join(sorted(spec.message_types))}")
    if not failed and len(files) > 1:
        try:
            MappingRegistry.from_texts(files)
        except ConfigError as e:
            print(f"the files as one set: {e.setting}: {e.message}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def _active(versions: MappingVersions) -> MappingVersion:
    version = versions.active()
    if version is None:
        raise BrokerError(
            "no mapping version is published yet: start the broker once (it seeds version 1 "
            "from the mappings directory) or run 'mwl-broker mapping publish'"
        )
    return version


def _version(versions: MappingVersions, number: int) -> MappingVersion:
    version = versions.get(number)
    if version is None:
        raise BrokerError(f"there is no mapping version {number} ('mapping history' lists them)")
    return version


def _history(versions: MappingVersions, limit: int) -> int:
    if limit < 1:
        raise BrokerError("--limit must be 1 or more")
    active = versions.active_number()
    rows = []
    for v in versions.history(limit):
        mark = "*" if v.number == active else ""
        files = ", ".join(sorted(v.files))
        rows.append((f"{mark}v{v.number}", when(v.created), v.author, files, v.comment))
    if not rows:
        print("no mapping version published yet")
        return 0
    print_table(("VERSION", "PUBLISHED", "BY", "FILES", "COMMENT"), rows)
    print("(* = active)")
    return 0


def _diff(versions: MappingVersions, settings: Settings, args: argparse.Namespace) -> int:
    numbers: list[int] = args.versions
    if len(numbers) > 2:
        raise BrokerError("give at most two versions")
    if args.dir is not None:
        if numbers:
            raise BrokerError("give either versions or --dir, not both")
        new = _active(versions)
        text = diff(new.files, read_mapping_dir(args.dir), f"v{new.number}", str(args.dir))
    else:
        if len(numbers) == 2:
            old, new = _version(versions, numbers[0]), _version(versions, numbers[1])
        elif len(numbers) == 1:
            old, new = _version(versions, numbers[0]), _active(versions)
        else:
            new = _active(versions)
            if new.based_on is None:
                print(f"v{new.number} is the first version: nothing to compare it with")
                return 0
            old = _version(versions, new.based_on)
        text = diff(old.files, new.files, f"v{old.number}", f"v{new.number}")
    print(text, end="" if text else "no difference\n")
    return 0


def _files_to_publish(
    versions: MappingVersions, settings: Settings, args: argparse.Namespace
) -> dict[str, str]:
    if args.files and args.dir is not None:
        raise BrokerError("give either FILEs or --dir, not both")
    if not args.files:
        return seed_mapping_files(args.dir or settings.mappings_dir)[0]
    current = versions.active()
    files = dict(current.files) if current is not None else {}
    for path in args.files:
        files[path.name] = _read(path)
    return files


def _preview(versions: MappingVersions, settings: Settings, args: argparse.Namespace) -> int:
    from broker.app import build_decoder
    from broker.mllp.client import split_messages
    from broker.services.preview import preview, render

    active = versions.active()
    if active is not None:
        files, label = dict(active.files), f"v{active.number}"
    else:
        files, label = seed_mapping_files(settings.mappings_dir)
    for path in args.mapping:
        files[path.name] = _read(path)
    if args.mapping:
        label += " with " + ", ".join(str(p) for p in args.mapping)
    registry = MappingRegistry.from_texts(
        files, label=f"v{active.number}" if active is not None and not args.mapping else None
    )
    try:
        messages = split_messages(args.message.read_bytes())
    except OSError as e:
        raise BrokerError(f"{args.message}: cannot read: {e.strerror}") from e
    if not messages:
        raise BrokerError(f"{args.message}: no HL7 message (MSH segment) in the file")
    refused, decoder = 0, build_decoder(settings)  # as the running broker decodes
    print(f"Mappings: {label}")
    for raw in messages:
        result = preview(raw, registry, decoder)
        print(render(result))
        refused += result.error is not None
    return 1 if refused else 0


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BrokerError(f"{path}: cannot read: {e}") from e


def _said(result: PublishResult) -> None:
    v = result.version
    if result.created:
        print(f"published {v.label}: active on every broker now ({', '.join(sorted(v.files))})")
    else:
        print(f"nothing published: the active {v.label} already has exactly these files")


def _export(versions: MappingVersions, settings: Settings, args: argparse.Namespace) -> int:
    version = _active(versions) if args.version is None else _version(versions, args.version)
    target: Path | None = args.to or settings.mappings_dir
    if target is None:
        raise BrokerError("export: give --to DIR (no mappings_dir is set)")
    for name in version.files:
        check_file_name(name)  # before anything is written: names come from Redis
    target.mkdir(parents=True, exist_ok=True)
    for name, text in sorted(version.files.items()):
        path = target / name
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old == text:
            print(f"{path}: unchanged")
            continue
        path.write_text(text, encoding="utf-8")
        print(f"{path}: {'written' if old is None else 'updated'}")
    for path in sorted(target.glob("*.yaml")):
        if path.name in version.files:
            continue
        if args.prune:
            path.unlink()
            print(f"{path}: deleted (not in v{version.number})")
        else:
            print(f"{path}: not in v{version.number}, left in place (--prune deletes it)")
    print(f"exported {version.label} to {target}")
    return 0
