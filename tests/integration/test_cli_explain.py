"""`mwl-broker explain` against a running broker: the same checks a scanner's C-FIND meets."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from broker.mllp.client import MLLPClient, split_messages, summarize_ack
from broker.settings import load_settings
from tests.broker_runner import DATA, MAPPINGS, REPO, running_broker

EXPLAIN = [sys.executable, "-m", "broker.cli", "explain"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("MWL_BROKER_")}


def config(tmp_path: Path) -> Path:
    path = tmp_path / "broker.toml"
    path.write_text(
        f"""
[broker]
data_dir = "{tmp_path / "data"}"
mappings_dir = "{MAPPINGS}"
hl7_host = "127.0.0.1"
hl7_port = 0
dicom_host = "127.0.0.1"
dicom_port = 0
admin_port = 0

[scanners.CT1]
addresses = ["127.0.0.1"]
scope = "own"

[scanners.CT_OTHER]
addresses = ["127.0.0.1"]
scope = ["CT9"]

[scanners.MR1]
addresses = ["127.0.0.1"]
modality = "MR"
date_window = "any"
""",
        encoding="utf-8",
    )
    return path


def explain(cfg: Path, *args: str, asked: str = "ACC-1001") -> subprocess.CompletedProcess[str]:
    """The command, with ``asked`` (the accession number or patient ID) on standard input."""
    return subprocess.run(
        [*EXPLAIN, "--config", str(cfg), *args], capture_output=True, text=True, timeout=60,
        check=False, env=ENV, cwd=REPO, input=f"{asked}\n",
    )  # fmt: skip


def test_explain_says_what_excludes_an_order(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with running_broker(load_settings(config_file=cfg, environ={})) as broker:
        assert broker.endpoints is not None
        message = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
        with MLLPClient("127.0.0.1", broker.endpoints.hl7_port, timeout=30) as client:
            assert summarize_ack(client.send(message)).code == "AA"
        # the order names no station (no IPC-9, no station table)
        own = explain(cfg, "--aet", "CT1", "--accession")
        assert own.returncode == 1, own.stderr
        assert "Scanner CT1: [scanners.CT1]; stations CT1" in own.stdout
        assert (
            "NOT SEEN: query key ScheduledStationAETitle = CT1 does not match the entry's "
            "nothing (an empty value matches only *)"
        ) in own.stdout
        # querying any station, the profile's scope still excludes it
        scoped = explain(cfg, "--aet", "CT1", "--accession", "--station", "*")
        assert (
            "NOT SEEN: profile scope: CT1 sees stations CT1; the entry is for no station"
        ) in scoped.stdout
        # a scanner without a profile sees every station, but the poll asks for its own AE
        # title and today's date
        before = dt.date.today()  # the command's "today": this day, or the next if it ends
        anyone = explain(cfg, "--aet", "CR7", "--accession", "--station", "")
        days = {before, dt.date.today()}
        assert anyone.returncode == 1  # scheduled for 20261126, not today
        assert any(
            "NOT SEEN: query key ScheduledProcedureStepStartDate = "
            f"{day:%Y%m%d} does not match the entry's 20261126" in anyone.stdout
            for day in days
        ), anyone.stdout
        on_the_day = explain(
            cfg, "--aet", "CR7", "--accession", "--station", "", "--date", "20261126"
        )
        assert on_the_day.returncode == 0 and "SEEN by CR7 with this query" in on_the_day.stdout
        # the same scanner from the network: no table of its own, so rejected at association
        remote = explain(cfg, "--aet", "CR7", "--accession", "--address", "10.0.0.7")
        assert remote.returncode == 1
        assert (
            "Scanner CR7: its association from 10.0.0.7 would be rejected: no [scanners.<AE>] "
            'table, and dicom_allow_unknown_callers = "loopback"'
        ) in remote.stdout
        mr = explain(cfg, "--aet", "MR1", "--accession", "--station", "", "--date", "none")
        assert "NOT SEEN: profile default modality MR (the query gave none); entry: CT" in mr.stdout
        missing = explain(cfg, "--aet", "CT1", "--accession", asked="NOPE")
        assert missing.returncode == 1 and "No worklist entry has accession NOPE" in missing.stdout


def test_explain_takes_no_identifier_from_the_command_line(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    given = explain(cfg, "--aet", "CT1", "--accession", "ACC-1001")
    assert given.returncode != 0 and given.stdout == ""
    assert "--accession: identifiers are not taken from the command line" in given.stderr
    assert "ACC-1001" not in given.stderr  # the refusal does not repeat it
    empty = explain(cfg, "--aet", "CT1", "--patient-id", asked="")
    assert empty.returncode != 0
    assert "--patient-id: standard input holds no identifier" in empty.stderr
