"""The ``mwl-broker`` command: ``serve`` runs the broker, ``send`` sends HL7 files over MLLP,
``messages`` lists, shows, reprocesses and dismisses logged messages, ``mapping`` checks,
publishes, rolls back and exports mapping versions, ``audit`` reads the audit trail, ``init``
writes a site's settings file and mapping files, ``migrate-keys`` converts (or checks) the
Redis key schema."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from broker.cli.audit import add_audit_parser, run_audit
from broker.cli.explain import add_explain_parser, run_explain
from broker.cli.importing import add_import_parser, run_import
from broker.cli.init import add_init_parser, run_init
from broker.cli.keys import add_keys_parser, run_keys
from broker.cli.mapping import add_mapping_parser, run_mapping
from broker.cli.messages import add_messages_parser, run_messages
from broker.cli.purge import add_purge_parser, run_purge
from broker.common.logsafety import configure_logging
from broker.errors import BrokerError, ConfigError
from broker.settings import ENV_PREFIX, Settings, load_settings

__all__ = ["main"]

_ACCEPTED = {"AA", "CA"}


def _serve_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the broker (MLLP listener, DICOM worklist SCP, Redis store)",
        description=(
            "Run the broker in the foreground. Settings come from --config (TOML), then "
            f"{ENV_PREFIX}<SETTING> environment variables, then these flags. With no Redis URL "
            "the broker runs its own redis-server with data in --data-dir."
        ),
    )
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML settings file")
    p.add_argument("--hl7-host", metavar="ADDR", help="MLLP listen address (default 0.0.0.0)")
    p.add_argument("--hl7-port", type=int, metavar="PORT", help="MLLP port (default 2575; 0 = any)")
    p.add_argument("--dicom-host", metavar="ADDR", help="DICOM listen address (default 0.0.0.0)")
    p.add_argument("--dicom-port", type=int, metavar="PORT", help="DICOM port (default 11112)")
    p.add_argument("--ae-title", metavar="AET", help="the broker's AE title (default MWL_BROKER)")
    p.add_argument("--admin-port", type=int, metavar="PORT", help="admin API port (default 8080)")
    p.add_argument("--data-dir", type=Path, metavar="DIR", help="data directory (default ./data)")
    p.add_argument(
        "--mappings-dir",
        type=Path,
        metavar="DIR",
        help="mapping files that seed version 1 (default: the set shipped with mwl-broker)",
    )
    p.add_argument("--redis-url", metavar="URL", help="use this Redis instead of the embedded one")
    p.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR")


def _send_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "send",
        help="send HL7 message files over MLLP and print each ACK",
        description=(
            "Send every message in FILE... (CR, LF or CRLF segment separators; several "
            "messages per file allowed) to HOST:PORT over MLLP, one at a time, and print each "
            "ACK: MSA-1, MSA-2 and any ERR. Exit status 1 if any message was not accepted."
        ),
    )
    p.add_argument("address", metavar="HOST:PORT", help="the MLLP listener, e.g. localhost:2575")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE", help="HL7 message files")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each ACK")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mwl-broker",
        description="HL7 v2 to DICOM Modality Worklist broker.",
        epilog="Run 'mwl-broker COMMAND --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_parser(sub)
    _send_parser(sub)
    add_messages_parser(sub)
    add_mapping_parser(sub)
    add_purge_parser(sub)
    add_explain_parser(sub)
    add_import_parser(sub)
    add_audit_parser(sub)
    add_init_parser(sub)
    add_keys_parser(sub)
    return parser


def _settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        name: getattr(args, name)
        for name in (
            "hl7_host", "hl7_port", "dicom_host", "dicom_port", "ae_title", "admin_port",
            "data_dir", "mappings_dir", "redis_url", "log_level",
        )
    }  # fmt: skip
    return load_settings(config_file=args.config, environ=os.environ, overrides=overrides)


def _configure_logging(level: str, log_phi: bool = False) -> None:
    configure_logging(level, log_phi=log_phi)


async def _serve(settings: Settings) -> int:
    """Run the broker until SIGINT/SIGTERM (exit status 0) or until it fails."""
    from broker.app import EXIT_REDIS_LOST, Broker

    broker = Broker(settings)
    endpoints = await broker.start()
    print(
        f"mwl-broker ready\n"
        f"  HL7 MLLP   {endpoints.hl7_host}:{endpoints.hl7_port}\n"
        f"  DICOM MWL  {endpoints.dicom_host}:{endpoints.dicom_port} "
        f"AE title {endpoints.ae_title}\n"
        f"  Redis      {endpoints.redis}\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(broker.failed.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        print("mwl-broker stopping", flush=True)
        await broker.stop()
    return EXIT_REDIS_LOST if broker.failed.is_set() else 0


def _send(args: argparse.Namespace) -> int:
    from broker.mllp.client import MLLPClient, split_messages, summarize_ack

    host, sep, port_text = args.address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ConfigError("HOST:PORT", f"{args.address!r} is not HOST:PORT")
    failures = 0
    with MLLPClient(host or "localhost", int(port_text), timeout=args.timeout) as client:
        for path in args.files:
            try:
                data = path.read_bytes()
            except OSError as e:
                print(f"{path}: cannot read: {e.strerror}")
                failures += 1
                continue
            try:
                messages = split_messages(data)
            except ValueError as e:
                print(f"{path}: not an HL7 message file: {e}")
                failures += 1
                continue
            if not messages:
                print(f"{path}: no HL7 message found")
                failures += 1
            for n, message in enumerate(messages, start=1):
                label = f"{path}" if len(messages) == 1 else f"{path}#{n}"
                try:
                    summary = summarize_ack(client.send(message))
                except ValueError as e:
                    print(f"{label}: the answer is not an HL7 ACK: {e}")
                    failures += 1
                    continue
                line = f"{label}: {summary.code} {summary.control_id}"
                if summary.text:
                    line += f" {summary.text}"
                print(line)
                for err in summary.errors:
                    print(f"  ERR {err}")
                failures += summary.code not in _ACCEPTED
    return 1 if failures else 0


# One-off commands: they log warnings only, so their output is theirs.
_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "messages": run_messages,
    "mapping": run_mapping,
    "purge": run_purge,
    "explain": run_explain,
    "import": run_import,
    "audit": run_audit,
    "init": run_init,
    "migrate-keys": run_keys,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            settings = _settings_from(args)
            _configure_logging(settings.log_level, settings.log_phi)
            return asyncio.run(_serve(settings))
        command = _COMMANDS.get(args.command)
        if command is not None:
            _configure_logging("WARNING")
            return command(args)
        return _send(args)
    except ConfigError as e:
        print(f"mwl-broker: configuration error: {e.setting}: {e.message}", file=sys.stderr)
        return 2
    except BrokerError as e:
        print(f"mwl-broker: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
