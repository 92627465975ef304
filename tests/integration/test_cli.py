"""The mwl-broker command as a person runs it: a separate process, real ports, signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from broker.mllp.client import MLLPClient, split_messages, summarize_ack
from tests.broker_runner import DATA, MAPPINGS

CLI = [sys.executable, "-m", "broker.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_help_lists_commands_and_options() -> None:
    top = run("--help")
    assert top.returncode == 0
    assert "serve" in top.stdout and "send" in top.stdout
    serve = run("serve", "--help")
    for flag in ("--config", "--hl7-host", "--hl7-port", "--dicom-port", "--ae-title",
                 "--admin-port", "--data-dir", "--redis-url"):  # fmt: skip
        assert flag in serve.stdout
    assert "HOST:PORT" in run("send", "--help").stdout
    assert "list, show, retry or discard" in top.stdout  # every outbound action
    assert "first admin" in run("init", "--help").stdout


def test_bad_setting_is_named_and_exits_2(tmp_path: Path) -> None:
    result = run("serve", "--hl7-port", "70000", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "configuration error: hl7_port" in result.stderr
    env_result = run("serve", env={"MWL_BROKER_AE_TITLE": "WAY_TOO_LONG_AE_TITLE"})
    assert env_result.returncode == 2
    assert "ae_title" in env_result.stderr


def test_bad_mapping_directory_is_a_start_up_error(tmp_path: Path) -> None:
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "bad.yaml").write_text("name: bad\nattributes:\n  PatientNam: PID-5\n")
    result = run("serve", "--hl7-port", "0", "--dicom-port", "0", "--data-dir", str(tmp_path / "d"),
                 "--admin-port", "0",
                 "--mappings-dir", str(tmp_path / "maps"))  # fmt: skip
    assert result.returncode == 2
    assert "bad.yaml" in result.stderr


def test_send_to_nothing_listening_fails_clearly(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run("send", f"127.0.0.1:{port}", str(DATA / "orm_o01_nw_latin1.hl7"))
    assert result.returncode == 1
    assert "127.0.0.1" in result.stderr


def test_serve_prints_where_it_listens_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [*CLI, "serve", "--hl7-host", "127.0.0.1", "--hl7-port", "0", "--dicom-host", "127.0.0.1",
         "--dicom-port", "0", "--admin-port", "0", "--data-dir", str(data),
         "--mappings-dir", str(MAPPINGS)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        banner = "".join(lines)
        found = re.search(r"HL7 MLLP\s+127\.0\.0\.1:(\d+)", banner)
        assert found is not None
        hl7_port = int(found[1])
        assert re.search(r"DICOM MWL\s+127\.0\.0\.1:\d+ AE title MWL_BROKER", banner)
        assert "embedded redis-server" in banner
        admin = re.search(r"Admin API\s+(http://127\.0\.0\.1:\d+)/api/", banner)
        assert admin is not None, banner
        # A newcomer is told where the console is and how its first user is made.
        assert f"the console: {admin[1]}/;" in banner
        assert "mwl-broker user add NAME --role admin" in banner
        assert httpx.get(f"{admin[1]}/healthz", timeout=30).json() == {"status": "ok"}
        message = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
        with MLLPClient("127.0.0.1", hl7_port, timeout=30) as client:
            assert summarize_ack(client.send(message)).code == "AA"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "mwl-broker stopping" in out
    assert not (data / "redis" / "redis.pid").exists(), "embedded redis-server left running"
    assert "PAT-1001" not in err and "Müller" not in err, "patient data logged at INFO"
