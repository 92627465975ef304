"""`mwl-broker messages` run as a person runs it: a separate process, with or without a broker."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from broker.app import Broker
from broker.mllp.client import MLLPClient, split_messages, summarize_ack
from tests.broker_runner import DATA, MAPPINGS, broker_settings, running_broker

CLI = [sys.executable, "-m", "broker.cli", "messages"]
ORM_NW = DATA / "orm_o01_nw_latin1.hl7"
ORM_NO_PID3 = DATA / "orm_o01_missing_pid3.hl7"


def messages(*args: str, data: Path, mappings: Path = MAPPINGS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args, "--data-dir", str(data), "--mappings-dir", str(mappings)],
        capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("MWL_BROKER_")},
    )  # fmt: skip


def send(broker: Broker, path: Path) -> str:
    assert broker.endpoints is not None
    message = split_messages(path.read_bytes())[0]
    with MLLPClient("127.0.0.1", broker.endpoints.hl7_port, timeout=30) as client:
        return summarize_ack(client.send(message)).code


def ids_in(listing: str) -> list[str]:
    return re.findall(r"^(\d+)\s", listing, flags=re.MULTILINE)


def test_list_show_dismiss_while_the_broker_runs_and_after(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_broker(broker_settings(data)) as broker:
        assert send(broker, ORM_NW) == "AA"
        assert send(broker, ORM_NO_PID3) == "AE"
        assert send(broker, ORM_NW) == "AA"  # a resend: logged as a duplicate

        listed = messages("list", data=data)
        assert listed.returncode == 0, listed.stderr
        assert ids_in(listed.stdout) == ["3", "2", "1"]
        assert re.search(
            r"^3 .*duplicate\s+AA\s+ORM\^O01\s+ORM-1001\s+RIS\^RADIOLOGY", listed.stdout, re.M
        )
        assert re.search(r"^2 .*error\s+AE\s+ORM\^O01\s+ORM-1003 .*PID-3", listed.stdout, re.M)

        errors = messages("list", "--errors", data=data)
        assert ids_in(errors.stdout) == ["2"] and "on error list" in errors.stdout
        assert ids_in(messages("list", "--control-id", "ORM-1001", data=data).stdout) == ["3", "1"]
        assert ids_in(messages("list", "--type", "ADT^A08", data=data).stdout) == []
        assert ids_in(messages("list", "--limit", "1", data=data).stdout) == ["3"]

        shown = messages("show", "2", data=data)
        assert shown.returncode == 0, shown.stderr
        assert "error        AE 101 at PID-3" in shown.stdout
        assert "MSA|AE|ORM-1003" in shown.stdout
        assert "\n  PID|||||Müller^Jürgen" in shown.stdout  # decoded as sent (8859/1)
        accepted = messages("show", "1", data=data).stdout
        assert "mapping      orders" in accepted and "entries      1 written" in accepted

        dismissed = messages("dismiss", "2", data=data)
        assert dismissed.returncode == 0 and "dismissed" in dismissed.stdout
        again = messages("dismiss", "2", data=data)
        assert again.returncode == 1 and "not on the error list" in again.stderr
    # no broker now: the command starts the embedded Redis for itself, and stops it
    after = messages("list", data=data)
    assert after.returncode == 0, after.stderr
    assert ids_in(after.stdout) == ["3", "2", "1"]
    assert "dismissed" in after.stdout
    assert not (data / "redis" / "redis.pid").exists(), "the command left redis-server running"
    missing = messages("show", "42", data=data)
    assert missing.returncode == 1 and "no message 42" in missing.stderr
    assert "no error waiting" in messages("list", "--errors", data=data).stdout


def test_reprocess_after_the_mapping_is_fixed(tmp_path: Path) -> None:
    data, maps = tmp_path / "data", tmp_path / "maps"
    shutil.copytree(MAPPINGS, maps)
    orders = maps / "orders.yaml"
    fixed = orders.read_text(encoding="utf-8")
    strict = fixed.replace(
        "PatientTransportArrangements: OBR-30",
        "PatientTransportArrangements: {path: OBR-30, required: true}",
    )
    assert strict != fixed
    orders.write_text(strict, encoding="utf-8")
    with running_broker(broker_settings(data, mappings_dir=maps)) as broker:
        assert send(broker, ORM_NW) == "AE"  # OBR-30 is empty in this order
        still = messages("reprocess", "1", data=data, mappings=maps)
        assert still.returncode == 1
        assert "AE" in still.stdout and "stays on the error list" in still.stdout

        orders.write_text(fixed, encoding="utf-8")  # the admin fixes the mapping...
        before = messages("reprocess", "1", data=data, mappings=maps)
        assert before.returncode == 1  # ...which counts once published:
        published = subprocess.run(
            [sys.executable, "-m", "broker.cli", "mapping", "publish", "--data-dir", str(data),
             "--mappings-dir", str(maps), "-m", "OBR-30 optional again"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
        assert "published v2" in published.stdout
        result = messages("reprocess", "1", data=data, mappings=maps)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "message 1 reprocessed as message 4: AA" in result.stdout
        assert "taken off the error list" in result.stdout
        assert broker.store is not None
        assert len(broker.store.order_entry_ids("PLACER:PLC-1001^RIS")) == 1
        assert "no error waiting" in messages("list", "--errors", data=data).stdout
        shown = messages("show", "1", data=data).stdout
        assert "reprocessed as message 4, AA" in shown
        new = messages("show", "4", data=data).stdout
        assert "from reprocess of message 1" in new and "outcome      accepted" in new
        # the RIS resends the original later: a duplicate, nothing changes
        assert send(broker, ORM_NW) == "AA"
        assert "duplicate" in messages("list", "--limit", "1", data=data).stdout


def test_messages_help_and_bad_input(tmp_path: Path) -> None:
    top = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=60, check=False)
    for action in ("list", "show", "reprocess", "dismiss"):
        assert action in top.stdout
    bad = messages("list", "--limit", "0", data=tmp_path / "d")
    assert bad.returncode == 1 and "--limit" in bad.stderr


def test_show_and_list_escape_what_the_sender_wrote(tmp_path: Path) -> None:
    """Terminal escapes and carriage returns in a message reach the screen escaped."""
    data = tmp_path / "data"
    raw = ORM_NO_PID3.read_bytes().replace(b"ORM-1003", b"X\x1b[2J\x1b]0;owned\x07Y", 1)
    hostile = tmp_path / "hostile.hl7"
    hostile.write_bytes(raw.replace(b"Jrgen", b"J\x1b[8mrgen"))
    with running_broker(broker_settings(data)) as broker:
        assert send(broker, hostile) == "AE"
    listed = messages("list", data=data)
    shown = messages("show", "1", data=data)
    for out in (listed.stdout, shown.stdout):
        assert "\x1b" not in out and "\x07" not in out, out
    assert "X\\x1b[2J\\x1b]0;owned\\x07Y" in listed.stdout
    assert "control ID X\\x1b[2J\\x1b]0;owned\\x07Y" in shown.stdout
