"""The commands on the audit trail, run as a person runs them (separate processes, while a
broker runs and after): mapping publish and rollback, messages reprocess and dismiss,
purge, import, each with the OS user; and ``mwl-broker audit`` reading it all back."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.cli.audit import parse_since
from broker.errors import BrokerError
from tests.broker_runner import MAPPINGS, broker_settings, running_broker
from tests.integration.test_cli_messages import ORM_NO_PID3, ORM_NW, send
from tests.scu import ModalityWorklistInformationFind

ENV = {k: v for k, v in os.environ.items() if not k.startswith("MWL_BROKER_")}


def cli(*args: str | Path, data: Path, maps: Path = MAPPINGS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", *map(str, args), "--data-dir", str(data),
         "--mappings-dir", str(maps)],
        capture_output=True, text=True, timeout=60, check=False, env=ENV,
    )  # fmt: skip


def records(data: Path, *args: str) -> list[dict[str, Any]]:
    shown = cli("audit", "--json", "--limit", "500", *args, data=data)
    assert shown.returncode == 0, shown.stderr
    return [json.loads(line) for line in shown.stdout.splitlines()]


def query(port: int) -> None:
    ae = AE(ae_title="CT1")
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="MWL_BROKER")
    identifier = Dataset()
    identifier.PatientName = "M*"
    identifier.PatientID = ""
    list(assoc.send_c_find(identifier, ModalityWorklistInformationFind))
    assoc.release()


def test_commands_are_recorded_and_the_trail_is_read_back(tmp_path: Path) -> None:
    data, maps, wl = tmp_path / "data", tmp_path / "maps", tmp_path / "worklists"
    shutil.copytree(MAPPINGS, maps)
    wl.mkdir()
    with running_broker(broker_settings(data, mappings_dir=maps)) as broker:
        assert broker.endpoints is not None
        assert send(broker, ORM_NW) == "AA" and send(broker, ORM_NO_PID3) == "AE"
        query(broker.endpoints.dicom_port)
        orders = maps / "orders.yaml"
        orders.write_text(orders.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
        for args in (
            ("mapping", "publish", "-m", "a comment stays in the history"),
            ("mapping", "rollback", "1"),
            ("messages", "reprocess", "1"),
            ("messages", "dismiss", "2"),
            ("purge", "--dry-run"),
            ("import", wl),
        ):
            done = cli(*args, data=data, maps=maps)
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert broker.audit is not None and broker.audit.writer.flush(30)
        table = cli("audit", data=data)
        assert table.returncode == 0, table.stderr
    by_type = {r["type"]: r for r in reversed(records(data))}  # the newest of each type
    user = getpass.getuser()
    for kind, command in (
        ("mapping-publish", "mapping publish"), ("mapping-rollback", "mapping rollback"),
        ("message-reprocess", "messages reprocess"), ("message-dismiss", "messages dismiss"),
        ("purge", "purge"), ("import", "import"), ("audit-read", "audit"),
    ):  # fmt: skip
        assert by_type[kind]["user"] == user and by_type[kind]["details"]["command"] == command
    assert by_type["mapping-publish"]["target"] == "v2"
    assert by_type["mapping-publish"]["details"]["files"] == [
        "adt.yaml",
        "orders.yaml",
        "outbound.yaml",
    ]
    assert "a comment" not in json.dumps(by_type["mapping-publish"])
    assert by_type["mapping-rollback"]["details"]["restores"] == 1
    assert by_type["mapping-seed"]["target"] == "v1" and "user" not in by_type["mapping-seed"]
    assert by_type["message-reprocess"]["target"] == "1"
    assert by_type["message-reprocess"]["details"]["ack"] == "AA"
    assert by_type["purge"]["details"] == {"command": "purge", "dry_run": True, "entries": 0,
                                           "mpps": 0}  # fmt: skip
    assert by_type["import"]["target"] == str(wl)
    assert by_type["query"]["ae"] == "CT1" and by_type["query"]["details"]["answers"] == 1
    assert by_type["application-stop"]["type"] == "application-stop"  # after the broker
    for line in ("mapping-publish", "message-dismiss", "query", "application-start"):
        assert line in table.stdout
    assert "M*" not in table.stdout


def test_filters_limits_and_bad_input(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_broker(broker_settings(data)) as broker:
        assert broker.endpoints is not None
        query(broker.endpoints.dicom_port)
        query(broker.endpoints.dicom_port)
        assert broker.audit is not None and broker.audit.writer.flush(30)
        queries = records(data, "--type", "query", "--ae", "CT1", "--address", "127.0.0.0/8",
                          "--since", "1h")  # fmt: skip
        assert [r["type"] for r in queries] == ["query", "query"]
        assert queries[0]["id"] > queries[1]["id"]  # newest first
        assert records(data, "--ae", "CT9") == []
        assert records(data, "--address", "10.0.0.0/8") == []
        two = records(data, "--type", "query", "--type", "association-accepted", "--limit", "2")
        assert len(two) == 2
        limited = cli("audit", "--limit", "1", data=data)
        assert "(the newest 1;" in limited.stdout
    for args, text in (
        (("--since", "yesterday"), "--since"),
        (("--limit", "0"), "--limit"),
        (("--address", "10.1.2.3/8"), "host bits"),
    ):
        bad = cli("audit", *args, data=data)
        assert bad.returncode == 1 and text in bad.stderr, bad.stderr
    unknown = cli("audit", "--type", "nonsense", data=data)
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


def test_what_a_peer_wrote_is_shown_escaped(tmp_path: Path) -> None:
    """A refused message's MSH-10 with terminal escapes reaches the screen escaped, in the
    table and in JSON."""
    data = tmp_path / "data"
    hostile = tmp_path / "hostile.hl7"
    raw = ORM_NW.read_bytes().replace(b"ORM-1001", b"X\x1b[2J\x1b]0;owned\x07Y", 1)
    hostile.write_bytes(raw.replace(b"|P|2.3.1", b"|T|2.3.1", 1))  # MSH-11 T: refused AR 202
    with running_broker(broker_settings(data)) as broker:
        assert send(broker, hostile) == "AR"
        assert broker.audit is not None and broker.audit.writer.flush(30)
    table = cli("audit", "--type", "message-refused", data=data)
    as_json = cli("audit", "--type", "message-refused", "--json", data=data)
    for out in (table.stdout, as_json.stdout):
        assert "message-refused" in out and "\x1b" not in out and "\x07" not in out, out
    assert "X\\x1b[2J\\x1b]0;owned\\x07Y" in table.stdout
    (record,) = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert record["target"] == "X\\x1b[2J\\x1b]0;owned\\x07Y"
    assert record["details"]["location"] == "MSH-11"


def test_since_takes_an_age_or_a_local_time() -> None:
    assert parse_since("90s", now=1000.0) == 910.0
    assert parse_since("2h", now=10_000.0) == 2800.0
    assert parse_since("2026-12-04") == parse_since("2026-12-04T00:00")
    with pytest.raises(BrokerError, match="--since"):
        parse_since("last week")
