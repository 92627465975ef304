"""The C-FIND benchmark's servers, each its own process on loopback: the broker
(``mwl-broker serve``, embedded redis-server), DCMTK wlmscpfs and the pynetdicom ceiling;
the entries written into the broker's Redis and as wlmscpfs files; the broker's VmRSS."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import redis

from bench.cfind_data import Entry, entry_dataset
from broker.settings import load_settings
from broker.store.connection import running_embedded
from broker.store.key_secret import key_schema
from broker.store.worklist import WorklistStore
from broker.worklist.model import OrderAction, OrderChange

REPO = Path(__file__).resolve().parents[1]
BATCH = 500


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[str]
    port: int
    called_ae: str
    info: str = ""
    hl7_port: int = 0

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, a minute to exit, then SIGKILL; its output pipe closed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class RssSampler:
    """Peak VmRSS of a process while the ``with`` block runs (sampled every 10 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.start = self.peak = vm_rss_kib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, vm_rss_kib(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def start_process(
    args: list[str],
    banner: str,
    env: dict[str, str] | None = None,
    *,
    stderr: IO[str] | None = None,
    before: list[str] | None = None,
) -> tuple[subprocess.Popen[str], re.Match[str]]:
    """Run a Python server process; return it and the banner line's match (port in group 1).
    ``before`` collects the lines printed before the banner."""
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=stderr, text=True, env=env
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(banner + r"\s+\S+:(\d+)(.*)", line)
        if found:
            return proc, found
        if before is not None:
            before.append(line)
    raise RuntimeError(f"{args[1]} did not start")


def start_ceiling(count: int, seed: int, mode: str = "both") -> Server:
    proc, m = start_process(
        ["-m", "bench.cfind_ceiling", "--entries", str(count), "--seed", str(seed),
         "--socket", mode],
        "CEILING SCP",
    )  # fmt: skip
    names = {"both": "ceiling", "nodelay": "ceiling (no QUICKACK)"}
    name = names.get(mode, "ceiling (Nagle on, no QUICKACK)")
    return Server(name, proc, int(m[1]), "CEILING", m[2].strip())


def start_broker(
    data_dir: Path,
    entry_cache: int | None,
    config: Path | None = None,
    log: IO[str] | None = None,
) -> Server:
    """``mwl-broker serve``, embedded Redis in ``data_dir``, no periodic purge (old dates);
    with a settings file, and its log (stderr) to ``log``. ``hl7_port`` is set too."""
    env = {**os.environ, "MWL_BROKER_RETENTION_INTERVAL_SECONDS": "0"}
    if entry_cache is not None:
        env["MWL_BROKER_DICOM_ENTRY_CACHE"] = str(entry_cache)
    options = ["--config", str(config)] if config is not None else []
    lines: list[str] = []
    proc, m = start_process(
        ["-m", "broker.cli", "serve", *options, "--hl7-host", "127.0.0.1", "--hl7-port", "0",
         "--admin-port", "0",
         "--dicom-host", "127.0.0.1", "--dicom-port", "0", "--data-dir", str(data_dir),
         "--mappings-dir", str(REPO / "mappings"), "--log-level", "WARNING"],
        "DICOM MWL",
        env,
        stderr=log,
        before=lines,
    )  # fmt: skip
    hl7 = next(re.search(r"HL7 MLLP\s+\S+:(\d+)", x) for x in lines if "HL7 MLLP" in x)
    assert hl7 is not None
    return Server("broker", proc, int(m[1]), "MWL_BROKER", hl7_port=int(hl7[1]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_wlmscpfs(root: Path, log: Path, nodelay: bool = True) -> Server:
    port = free_port()
    env = dict(os.environ)
    if nodelay:
        env["TCP_NODELAY"] = "1"
    else:
        env.pop("TCP_NODELAY", None)
    with log.open("a") as out:
        proc = subprocess.Popen(
            ["wlmscpfs", "-dfp", str(root), "-csk", str(port)],
            stdout=out, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"wlmscpfs exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            name = "wlmscpfs" if nodelay else "wlmscpfs (Nagle on)"
            return Server(name, proc, port, "WLMSCPFS")
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("wlmscpfs did not listen")


def broker_store(client: redis.Redis, data_dir: Path) -> WorklistStore:
    """The store of the broker serving ``data_dir``, with its key secret (made at its start)."""
    settings = load_settings(environ={}, overrides={"data_dir": data_dir})
    return WorklistStore(client, keys=key_schema(settings))


def load(entries: list[Entry], data_dir: Path, wl_dir: Path) -> float:
    """Write the entries into the broker's Redis and as wlmscpfs files; seconds taken."""
    started = time.perf_counter()
    found = running_embedded(data_dir / "redis")
    if found is None:
        raise RuntimeError("the broker's embedded redis-server is not running")
    client = redis.Redis(unix_socket_path=str(found[1]), socket_timeout=300)
    store = broker_store(client, data_dir)
    wl_dir.mkdir(parents=True)
    (wl_dir / "lockfile").touch()
    for i in range(0, len(entries), BATCH):
        batch = [(e, entry_dataset(e)) for e in entries[i : i + BATCH]]
        store.apply(
            [OrderChange(f"BENCH:{e.accession}", OrderAction.SCHEDULE, (ds,)) for e, ds in batch],
            None,
        )
        for e, ds in batch:
            ds.SpecificCharacterSet = "ISO_IR 192"
            ds.save_as(wl_dir / f"{e.accession}.wl", implicit_vr=True, little_endian=True)
    if store.count() != len(entries):
        raise RuntimeError(f"the broker holds {store.count()} entries, not {len(entries)}")
    client.close()
    return time.perf_counter() - started
