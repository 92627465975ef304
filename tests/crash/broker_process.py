"""``python -m broker.cli serve`` as a process of its own, as a supervisor runs it: started
with a settings file, killed with SIGKILL, its embedded redis-server killed under it,
restarted. Every start, kill and exit is timed on the harness's clock (``time.monotonic``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from broker.store.embedded import server_pid
from tests.waiting import wait_for

__all__ = ["BrokerProcess", "Window", "write_settings"]

REPO = Path(__file__).resolve().parents[2]
_READY = "Press Ctrl-C to stop."
_START_SECONDS = 120.0  # a start on a loaded machine: Redis loads its AOF first


@dataclass
class Window:
    """A time the broker could not store: from a kill to the next start's ready line."""

    what: str  # "broker" (SIGKILL of the broker) or "redis" (SIGKILL of its redis-server)
    killed: float
    ready: float = float("inf")
    exit_code: int | None = None  # the broker's, after the kill (-9 for SIGKILL)


def write_settings(folder: Path, receiver_port: int) -> Path:
    """The settings file: loopback ports chosen by the system, the RIS as sender and as
    destination of the status messages, no purge, room for every entry in a C-FIND."""
    config = folder / "broker.toml"
    config.write_text(
        f'data_dir = "{folder / "data"}"\n'
        f'mappings_dir = "{REPO / "mappings"}"\n'
        'hl7_host = "127.0.0.1"\nhl7_port = 0\nhl7_idle_timeout = 120\n'
        'dicom_host = "127.0.0.1"\ndicom_port = 0\n'
        'admin_host = "127.0.0.1"\nadmin_port = 0\n'
        "retention_interval_seconds = 0\n"
        "dicom_max_answers = 50000\n"
        "dicom_broad_query_candidates = 1000000\n"
        "dicom_query_cpu_seconds = 600\n"  # the final C-FIND of every entry, on a busy machine
        "dicom_network_timeout = 600\n"
        "message_log_max = 1000000\n"
        'redis_max_memory = "0"\n'
        'log_level = "WARNING"\n'
        '[hl7_senders.RIS]\naddresses = ["127.0.0.1"]\ndestination = "ris"\n'
        f'[hl7_destinations.ris]\nhost = "127.0.0.1"\nport = {receiver_port}\n'
        "ack_timeout = 10\nretry_first = 0.05\nretry_max = 0.5\n"
    )
    return config


class BrokerProcess:
    """The broker under test; ``hl7_port`` and ``dicom_port`` are those of the current run
    (0 while it is down)."""

    def __init__(self, folder: Path, config: Path) -> None:
        self.folder = folder
        self.config = config
        self.hl7_port = 0
        self.dicom_port = 0
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: Path | None = None

    def __repr__(self) -> str:
        return f"BrokerProcess(hl7_port={self.hl7_port}, starts={self.starts})"

    @property
    def redis_dir(self) -> Path:
        return self.folder / "data" / "redis"

    def start(self) -> float:
        """Start it and wait for its ready line; the time it was ready."""
        self.starts += 1
        self._out = out = self.folder / f"broker-{self.starts}.out"
        err = self.folder / f"broker-{self.starts}.log"
        cmd = [sys.executable, "-m", "broker.cli", "serve", "--config", str(self.config)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MWL_BROKER_")}
        with out.open("wb") as stdout, err.open("wb") as stderr:
            self._proc = subprocess.Popen(
                cmd, cwd=REPO, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL, env=env
            )
        proc = self._proc
        wait_for(lambda: proc.poll() is not None or _READY in out.read_text(), "broker ready",
                 _START_SECONDS)  # fmt: skip
        text = out.read_text()
        if proc.poll() is not None:
            raise RuntimeError(f"the broker exited at start ({proc.returncode}): {err.read_text()}")
        hl7 = re.search(r"HL7 MLLP\s+\S+:(\d+)", text)
        dicom = re.search(r"DICOM MWL\s+\S+:(\d+)", text)
        assert hl7 is not None and dicom is not None, text
        self.hl7_port, self.dicom_port = int(hl7[1]), int(dicom[1])
        return time.monotonic()

    def kill(self) -> Window:
        """SIGKILL the broker and wait for it; its embedded Redis goes with it."""
        proc = self._require()
        self.hl7_port = self.dicom_port = 0
        proc.send_signal(signal.SIGKILL)
        window = Window("broker", time.monotonic())
        window.exit_code = proc.wait(60)
        wait_for(lambda: server_pid(self.redis_dir) is None, "its redis-server gone", 60)
        return window

    def kill_redis(self, exit_seconds: float = 90.0) -> Window:
        """SIGKILL the embedded redis-server; the broker must then stop by itself."""
        proc = self._require()
        pid = server_pid(self.redis_dir)
        assert pid is not None, "no embedded redis-server to kill"
        os.kill(pid, signal.SIGKILL)
        window = Window("redis", time.monotonic())
        try:
            window.exit_code = proc.wait(exit_seconds)
        except subprocess.TimeoutExpired:
            proc.kill()  # it did not notice: a finding, reported as exit code None
            proc.wait(60)
        self.hl7_port = self.dicom_port = 0
        return window

    def stop(self) -> int | None:
        """SIGTERM (a clean stop); its exit code, None if it was not running."""
        proc, self._proc = self._proc, None
        self.hl7_port = self.dicom_port = 0
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(60)
        return proc.returncode

    def logs(self) -> str:
        """Every run's log (stderr), for a failure message."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.folder.glob("*.log")))

    def _require(self) -> subprocess.Popen[bytes]:
        assert self._proc is not None and self._proc.poll() is None, "the broker is not running"
        return self._proc
