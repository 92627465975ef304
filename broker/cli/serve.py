"""``mwl-broker serve``: run the broker in the foreground until SIGINT/SIGTERM.

The composition root (``broker.app.Broker``) starts everything and stops it in
order. Exit status 0 after a signal, ``broker.app.EXIT_REDIS_LOST`` when the
embedded redis-server died under it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import TYPE_CHECKING

from broker.cli.common import Command, Subparsers
from broker.cli.options import SERVE_OPTIONS, add_options, settings_from
from broker.common.logsafety import configure_logging
from broker.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from broker.app import Endpoints

__all__ = ["COMMAND"]


def add_parser(sub: Subparsers) -> None:
    p = sub.add_parser(
        "serve",
        help="run the broker (MLLP listener, DICOM worklist SCP, Redis store)",
        description=(
            "Run the broker in the foreground. Settings come from --config (TOML), then "
            f"{ENV_PREFIX}<SETTING> environment variables, then these flags. With no Redis URL "
            "the broker runs its own redis-server with data in --data-dir."
        ),
    )
    add_options(p, SERVE_OPTIONS)


def run(args: argparse.Namespace) -> int:
    """Serve with the settings of the file, the environment and the flags."""
    settings = settings_from(args, SERVE_OPTIONS)
    configure_logging(settings.log_level, log_phi=settings.log_phi, log_format=settings.log_format)
    return asyncio.run(_serve(settings))


def banner(settings: Settings, endpoints: Endpoints) -> str:
    """What ``serve`` prints once it is ready: where each listener is, or why it is off."""
    off = "off (not in roles)"
    hl7 = f"{endpoints.hl7_host}:{endpoints.hl7_port}" if endpoints.hl7_port else off
    dicom = off
    if endpoints.dicom_port:
        dicom = f"{endpoints.dicom_host}:{endpoints.dicom_port} AE title {endpoints.ae_title}"
    admin = "off (admin_enabled = false)" if "admin" in settings.roles else off
    if endpoints.admin_url is not None:
        admin = (
            f"{endpoints.admin_url}/api/ (the console: {endpoints.admin_url}/; its first user: "
            "mwl-broker user add NAME --role admin)"
        )
    shared = " (ports shared: listen_reuse_port)" if settings.listen_reuse_port else ""
    return (
        f"mwl-broker ready, roles {', '.join(settings.roles)}{shared}\n"
        f"  HL7 MLLP   {hl7}\n"
        f"  DICOM MWL  {dicom}\n"
        f"  Admin API  {admin}\n"
        f"  Redis      {endpoints.redis}\n"
        "Press Ctrl-C to stop."
    )


async def _serve(settings: Settings) -> int:
    """Run the broker until SIGINT/SIGTERM (exit status 0) or until it fails."""
    from broker.app import EXIT_REDIS_LOST, Broker

    broker = Broker(settings)
    endpoints = await broker.start()
    print(banner(settings, endpoints), flush=True)
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


COMMAND = Command("serve", add_parser, run, log_level=None)
