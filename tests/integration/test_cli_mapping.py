"""`mwl-broker mapping` as an admin runs it, and two broker processes following a publish."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from broker.mllp.client import MLLPClient, split_messages, summarize_ack
from broker.store.connection import EmbeddedRedis
from broker.store.message_records import MessageQuery
from broker.store.msglog import MessageLog
from broker.store.worklist import WorklistStore
from broker.worklist.model import CandidateCriteria
from tests.broker_runner import DATA, MAPPINGS, REPO
from tests.conftest import KEYS, TEST_SECRET

MAPPING = [sys.executable, "-m", "broker.cli", "mapping"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("MWL_BROKER_")}


def mapping(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MAPPING, *map(str, args)], capture_output=True, text=True, timeout=60, check=False,
        env=ENV, cwd=REPO,
    )  # fmt: skip


def edited_orders(tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / "edited" / "orders.yaml"
    path.parent.mkdir(exist_ok=True)
    text = (MAPPINGS / "orders.yaml").read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_check_reports_ok_and_errors_with_file_and_rule(tmp_path: Path) -> None:
    ok = mapping("check", *sorted(MAPPINGS.glob("*.yaml")))
    assert ok.returncode == 0, ok.stderr
    assert "orders.yaml: ok: mapping 'orders' for OMG^O19, OMI^O23, ORM^O01" in ok.stdout
    bad = edited_orders(tmp_path, "PatientSex:", "PatientSx:")
    failed = mapping("check", bad)
    assert failed.returncode == 1
    assert "orders.yaml" in failed.stderr and "did you mean PatientSex" in failed.stderr
    twice = tmp_path / "twice.yaml"
    shutil.copy(MAPPINGS / "orders.yaml", twice)
    clash = mapping("check", MAPPINGS / "orders.yaml", twice)
    assert clash.returncode == 1 and "claimed by both" in clash.stderr


def test_publish_history_diff_rollback_export(tmp_path: Path) -> None:
    data = tmp_path / "data"
    where = ("--data-dir", data, "--mappings-dir", MAPPINGS)
    assert "no mapping version published yet" in mapping("history", *where).stdout
    assert "published v1" in mapping("publish", *where, "-m", "initial").stdout
    edited = edited_orders(tmp_path, "AdmissionID: PV1-19", "AdmissionID: PV1-50")
    second = mapping("publish", edited, *where, "--author", "ana", "-m", "visit number")
    assert second.returncode == 0 and "published v2" in second.stdout
    unchanged = mapping("publish", edited, *where)
    assert "nothing published: the active v2" in unchanged.stdout
    stale = mapping("publish", *where, "--expect", "1", "-m", "late")
    assert stale.returncode == 1 and "not v1" in stale.stderr

    changes = mapping("diff", *where).stdout
    assert "-  AdmissionID: PV1-19" in changes and "+  AdmissionID: PV1-50" in changes
    against_files = mapping("diff", *where, "--dir", MAPPINGS).stdout
    assert "-  AdmissionID: PV1-50" in against_files  # publishing the files would undo it

    broken = edited_orders(tmp_path, "PatientSex:", "PatientSx:")
    refused = mapping("publish", broken, *where, "-m", "typo")
    assert refused.returncode == 2 and "did you mean PatientSex" in refused.stderr

    rolled = mapping("rollback", "1", *where, "-m", "visit number was wrong")
    assert "published v3" in rolled.stdout
    listing = mapping("history", *where).stdout
    assert re.search(r"\*v3 .* rollback to v1: visit number was wrong", listing)
    assert re.search(r"v2 .* ana .* visit number", listing) and "typo" not in listing

    out = tmp_path / "export"
    out.mkdir()
    (out / "old.yaml").write_text("name: old\n", encoding="utf-8")
    exported = mapping("export", *where, "--to", out, "--version", "2")
    assert exported.returncode == 0, exported.stderr
    assert "PV1-50" in (out / "orders.yaml").read_text(encoding="utf-8")
    assert "old.yaml: not in v2, left in place" in exported.stdout
    mapping("export", *where, "--to", out, "--prune")
    assert sorted(p.name for p in out.iterdir()) == ["adt.yaml", "orders.yaml", "outbound.yaml"]
    assert (out / "orders.yaml").read_text(encoding="utf-8") == (
        MAPPINGS / "orders.yaml"
    ).read_text(encoding="utf-8")


def test_preview_with_the_active_version_and_with_an_edited_file(tmp_path: Path) -> None:
    where = ("--data-dir", tmp_path / "data", "--mappings-dir", MAPPINGS)
    message = DATA / "orm_o01_nw_latin1.hl7"
    shown = mapping("preview", message, *where)  # nothing published yet: the directory's files
    assert shown.returncode == 0, shown.stderr
    assert f"Mappings: {MAPPINGS}" in shown.stdout
    assert re.search(r"\(0038,0010\) LO AdmissionID\s+V-5001", shown.stdout)
    assert re.search(r"AdmissionID\s+PV1-19\s+V-5001", shown.stdout)  # the trace row
    mapping("publish", *where, "-m", "initial")
    edited = edited_orders(tmp_path, "AdmissionID: PV1-19", 'AdmissionID: {value: "FIXED"}')
    trial = mapping("preview", message, "--mapping", edited, *where)
    assert "Mappings: v1 with " in trial.stdout
    assert re.search(r"AdmissionID\s+constant\s+FIXED", trial.stdout)
    assert "published v2" not in trial.stdout and "v1" in mapping("history", *where).stdout
    refused = mapping("preview", DATA / "orm_o01_missing_pid3.hl7", *where)
    assert refused.returncode == 1
    assert "AE 101 at PID-3" in refused.stdout and "version v1:" in refused.stdout
    empty = tmp_path / "empty.hl7"
    empty.write_text("not a message", encoding="utf-8")
    assert mapping("preview", empty, *where).returncode == 1


def test_preview_decodes_with_the_charsets_and_zones_of_the_config_file(tmp_path: Path) -> None:
    latin1 = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
    message = tmp_path / "no_msh18.hl7"
    message.write_bytes(latin1.replace(b"|8859/1\r", b"|\r", 1))  # MSH-3 RIS: no MSH-18
    config = tmp_path / "broker.toml"
    config.write_text(
        '[broker]\nhl7_sender_charsets = { RIS = "8859/1" }\n'
        'hl7_sender_timezones = { RIS = "America/New_York" }\n',
        encoding="utf-8",
    )
    where = ("--data-dir", tmp_path / "data", "--mappings-dir", MAPPINGS)
    shown = mapping("preview", message, "--config", config, *where)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert re.search(r"\(0010,0010\) PN PatientName\s+M\u00fcller\^J\u00fcrgen", shown.stdout)
    assert "Charset  iso8859-1\n" in shown.stdout
    sent = "MSH-7 20261125083000 = 2026-11-25 13:30:00 UTC (without an offset: America/New_York)"
    assert sent in shown.stdout
    refused = mapping("preview", message, *where)  # no config: the default, UTF-8
    assert refused.returncode == 1
    assert "Outcome  AE 102 at MSH-18: byte 0xFC at offset" in refused.stdout
    assert "M\u00fcller" not in refused.stdout


def test_preview_from_a_peer_decodes_with_the_charset_of_its_senders_table(
    tmp_path: Path,
) -> None:
    latin1 = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
    message = tmp_path / "no_msh18.hl7"
    message.write_bytes(latin1.replace(b"|8859/1\r", b"|\r", 1))
    config = tmp_path / "broker.toml"  # the RIS known by its address, not by MSH-3
    config.write_text('[hl7_senders.RIS]\naddresses = ["10.1.2.0/24"]\ncharset = "8859/1"\n')
    where = ("--config", config, "--data-dir", tmp_path / "data", "--mappings-dir", MAPPINGS)
    shown = mapping("preview", message, "--peer", "10.1.2.3", *where)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert re.search(r"\(0010,0010\) PN PatientName\s+M\u00fcller\^J\u00fcrgen", shown.stdout)
    assert "Charset  iso8859-1\n" in shown.stdout
    refused = mapping("preview", message, *where)  # no --peer: no sender's table applies
    assert refused.returncode == 1
    assert "Outcome  AE 102 at MSH-18" in refused.stdout


class ServeProcess:
    """``mwl-broker serve`` on a shared Redis; its log lines are collected as they come."""

    def __init__(self, redis_url: str, data_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broker.cli", "serve", "--hl7-host", "127.0.0.1",
             "--hl7-port", "0", "--dicom-host", "127.0.0.1", "--dicom-port", "0",
             "--admin-port", "0", "--data-dir", str(data_dir), "--mappings-dir", str(MAPPINGS),
             "--redis-url", redis_url, "--log-level", "INFO"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env={**ENV, "MWL_BROKER_REDIS_KEY_SECRET": TEST_SECRET.decode()},
        )  # fmt: skip
        self.log: list[str] = []
        self._collector = threading.Thread(target=self._collect, daemon=True)
        self._collector.start()
        assert self.proc.stdout is not None
        banner = ""
        for line in self.proc.stdout:
            banner += line
            if line.startswith("Press Ctrl-C"):
                break
        found = re.search(r"HL7 MLLP\s+127\.0\.0\.1:(\d+)", banner)
        assert found, banner + "".join(self.log)
        self.port = int(found[1])

    def _collect(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)

    def wait_for_log(self, text: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(text in line for line in self.log):
                return
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not logged:\n{''.join(self.log)}")

    def send(self, message: bytes) -> str:
        with MLLPClient("127.0.0.1", self.port, timeout=30) as client:
            return summarize_ack(client.send(message)).code

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._collector.join(30)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def serving(redis_url: str, data_dir: Path) -> Iterator[ServeProcess]:
    broker = ServeProcess(redis_url, data_dir)
    try:
        yield broker
    finally:
        broker.stop()


def order(number: int) -> bytes:
    raw = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
    return raw.replace(b"1001", str(number).encode())  # control ID, order and accession numbers


def admission(client: redis.Redis, accession: str) -> str:
    (entry,) = WorklistStore(client, keys=KEYS).candidates(
        CandidateCriteria(accession_number=accession)
    )
    return str(entry.AdmissionID)


def test_a_publish_changes_the_next_message_on_every_broker_process(
    redis_server: EmbeddedRedis, redis_client: redis.Redis, tmp_path: Path
) -> None:
    url = redis_server.url
    with serving(url, tmp_path / "a") as a, serving(url, tmp_path / "b") as b:
        assert a.send(order(2001)) == "AA"
        assert admission(redis_client, "ACC-2001") == "V-5001"  # PV1-19, seeded version 1
        edited = edited_orders(tmp_path, "AdmissionID: PV1-19", 'AdmissionID: {value: "V2"}')
        published = mapping("publish", edited, "--redis-url", url, "-m", "constant visit")
        assert published.returncode == 0, published.stderr
        a.wait_for_log("mappings: now v2")
        b.wait_for_log("mappings: now v2")
        assert b.send(order(2002)) == "AA" and a.send(order(2003)) == "AA"
        assert admission(redis_client, "ACC-2002") == "V2"
        assert admission(redis_client, "ACC-2003") == "V2"
        # a broken change is refused; both keep mapping with v2
        broken = edited_orders(tmp_path, "PatientSex:", "PatientSx:")
        refused = mapping("publish", broken, "--redis-url", url, "-m", "typo")
        assert refused.returncode == 2
        assert b.send(order(2004)) == "AA" and admission(redis_client, "ACC-2004") == "V2"
    # each message names the version that mapped it
    logged = {r.control_id: r.id for r in MessageLog(redis_client).find(MessageQuery()).items}
    versions_used = {
        cid: MessageLog(redis_client).get(logged[cid]).mapping_version.split(":")[0]  # type: ignore[union-attr]
        for cid in ("ORM-2001", "ORM-2002", "ORM-2003", "ORM-2004")
    }
    assert versions_used == {"ORM-2001": "v1", "ORM-2002": "v2", "ORM-2003": "v2", "ORM-2004": "v2"}
    versions = subprocess.run(
        [*MAPPING, "history", "--redis-url", url], capture_output=True, text=True, env=ENV,
        timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "*v2" in versions and "seeded from" in versions


def test_export_refuses_a_file_name_that_leaves_the_directory(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    """A version written into Redis by hand cannot make `export` write elsewhere."""
    where = ("--redis-url", redis_server.url)
    assert mapping("publish", *where, "--dir", MAPPINGS, "-m", "first").returncode == 0
    client = redis.Redis.from_url(redis_server.url)
    files = {"orders.yaml": "x", "../escaped.yaml": "name: evil\n"}
    client.hset("mwl:mapping:v:1", "files", json.dumps(files))
    client.close()
    out = tmp_path / "site" / "mappings"
    exported = mapping("export", *where, "--to", out)
    assert exported.returncode == 1
    assert "'../escaped.yaml' is not allowed" in exported.stderr
    assert not (tmp_path / "site" / "escaped.yaml").exists() and not out.exists()
