"""What the mapping-file tests share: a small mapping file written from parts, and the
ConfigError loading it gives."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from broker.errors import ConfigError
from broker.mapping.parser import load_mapping

BASE = """\
message_types:
  ORM^O01: OBR
order_control:
  NW: schedule
order_key:
  - PLACER: ORC-2
attributes:
{attributes}
"""
GOOD_ATTRIBUTES = """\
PatientID: {path: PID-3, required: true}
ScheduledProcedureStepSequence:
  Modality: OBR-24
"""


def write(
    tmp_path: Path, attributes: str = GOOD_ATTRIBUTES, name: str = "test.yaml", **extra: str
) -> Path:
    text = BASE.format(attributes=textwrap.indent(textwrap.dedent(attributes), "  ").rstrip())
    for key, value in extra.items():
        text += f"{key}:\n{textwrap.indent(textwrap.dedent(value), '  ')}"
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_mapping(path)
    return info.value
