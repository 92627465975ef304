"""The options that find the broker's settings, declared once for every command.

Each :class:`Option` names the setting it overrides: ``serve`` takes them all,
the one-off commands the four that find the settings, the data and the Redis.
Settings come from ``--config`` (TOML), then ``MWL_BROKER_<SETTING>`` environment
variables, then these options (``broker.settings.load_settings``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.settings import Settings, load_settings

__all__ = [
    "COMMAND_OPTIONS",
    "CONFIG",
    "SERVE_OPTIONS",
    "Option",
    "add_options",
    "command_options",
    "settings_from",
]


@dataclass(frozen=True)
class Option:
    """One option: its flag, the setting it overrides ("" for ``--config``), its help."""

    flag: str
    setting: str
    metavar: str
    help: str
    type: Callable[[str], Any] = str

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(self.flag, type=self.type, metavar=self.metavar, help=self.help)


CONFIG = Option("--config", "", "FILE", "TOML settings file", Path)
HL7_HOST = Option("--hl7-host", "hl7_host", "ADDR", "MLLP listen address (default 0.0.0.0)")
HL7_PORT = Option("--hl7-port", "hl7_port", "PORT", "MLLP port (default 2575; 0 = any)", int)
DICOM_HOST = Option("--dicom-host", "dicom_host", "ADDR", "DICOM listen address (default 0.0.0.0)")
DICOM_PORT = Option(
    "--dicom-port", "dicom_port", "PORT", "DICOM port (default 11112; 0 = any)", int
)
AE_TITLE = Option("--ae-title", "ae_title", "AET", "the broker's AE title (default MWL_BROKER)")
ADMIN_PORT = Option(
    "--admin-port",
    "admin_port",
    "PORT",
    "console, API and DICOMweb port (default 8080; 0 = any)",
    int,
)
DATA_DIR = Option("--data-dir", "data_dir", "DIR", "data directory (default ./data)", Path)
MAPPINGS_DIR = Option(
    "--mappings-dir",
    "mappings_dir",
    "DIR",
    "the mapping files' directory; they seed version 1 (default: the set shipped with mwl-broker)",
    Path,
)
REDIS_URL = Option("--redis-url", "redis_url", "URL", "use this Redis instead of the embedded one")
LOG_LEVEL = Option("--log-level", "log_level", "LEVEL", "DEBUG, INFO, WARNING or ERROR")

SERVE_OPTIONS = (
    CONFIG, HL7_HOST, HL7_PORT, DICOM_HOST, DICOM_PORT, AE_TITLE, ADMIN_PORT, DATA_DIR,
    MAPPINGS_DIR, REDIS_URL, LOG_LEVEL,
)  # fmt: skip
COMMAND_OPTIONS = (CONFIG, DATA_DIR, REDIS_URL, MAPPINGS_DIR)


def add_options(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """Declare ``options`` on ``parser``."""
    for option in options:
        option.add_to(parser)


def command_options() -> argparse.ArgumentParser:
    """A parent parser with :data:`COMMAND_OPTIONS`, for the one-off commands."""
    common = argparse.ArgumentParser(add_help=False)
    add_options(common, COMMAND_OPTIONS)
    return common


def settings_from(
    args: argparse.Namespace, options: Sequence[Option] = COMMAND_OPTIONS
) -> Settings:
    """Settings from ``--config``, the environment and ``options`` as ``args`` gives them."""
    overrides = {o.setting: getattr(args, o.dest) for o in options if o.setting}
    return load_settings(config_file=args.config, environ=os.environ, overrides=overrides)
