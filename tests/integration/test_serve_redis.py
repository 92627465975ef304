"""``mwl-broker serve`` and its embedded redis-server as real processes: a broker killed
with SIGKILL comes back on the same data directory with every acknowledged order, and a
broker whose redis-server died exits for its supervisor to restart it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from broker.mllp.client import MLLPClient, MLLPClientError, split_messages, summarize_ack
from tests.broker_runner import DATA, MAPPINGS
from tests.conformance.broker_process import BrokerProcess, quiet_pynetdicom
from tests.waiting import wait_for

_TEMPLATE = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]


def order(n: int) -> bytes:
    """A distinct order: control ID, patient, order numbers, accession ACC-<n>, UIDs."""
    return _TEMPLATE.replace(b"1001", str(n).encode())


def accessions(broker: BrokerProcess) -> set[int]:
    """The accession numbers (ACC-<n>) of every entry, through a broad C-FIND."""
    return {int(identity[3].removeprefix("ACC-")) for identity in broker.worklist()}


def pid_of_redis(data: Path) -> int:
    return int((data / "redis" / "redis.pid").read_text())


def gone(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return text.rsplit(")", 1)[1].split()[0] == "Z"  # exited, not yet reaped


def test_a_broker_killed_under_load_comes_back_with_every_acknowledged_order(
    tmp_path: Path,
) -> None:
    quiet_pynetdicom()
    data = tmp_path / "data"
    senders = 3
    acknowledged: list[int] = []
    with BrokerProcess(data, tmp_path / "killed.log") as first:
        redis_pid = pid_of_redis(data)

        def send(sender: int) -> None:
            n = 20_000 + sender
            with MLLPClient("127.0.0.1", first.hl7_port, timeout=30) as client:
                while True:
                    try:
                        code = summarize_ack(client.send(order(n))).code
                    except MLLPClientError:
                        return  # the broker is gone
                    if code == "AA":
                        acknowledged.append(n)
                    n += senders

        threads = [threading.Thread(target=send, args=(s,)) for s in range(senders)]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(acknowledged) >= 30, "30 orders acknowledged")
        first.proc.send_signal(signal.SIGKILL)  # as the OOM killer does
        first.proc.wait()
        for thread in threads:
            thread.join(60)
        # Its redis-server does not outlive it (parent-death signal).
        wait_for(lambda: gone(redis_pid), "the embedded redis-server stopped")
    with BrokerProcess(data, tmp_path / "restarted.log") as second:
        assert set(acknowledged) <= accessions(second)
        with MLLPClient("127.0.0.1", second.hl7_port, timeout=30) as client:
            assert summarize_ack(client.send(order(1))).code == "AA"
    assert second.proc.returncode == 0


def test_a_broker_whose_redis_server_dies_exits_for_its_supervisor(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = tmp_path / "broker.log"
    broker = BrokerProcess(data, log)
    try:
        with MLLPClient("127.0.0.1", broker.hl7_port, timeout=30) as client:
            assert summarize_ack(client.send(order(1))).code == "AA"
        os.kill(pid_of_redis(data), signal.SIGKILL)
        wait_for(lambda: broker.exit_code() is not None, "the broker exited")
        assert broker.exit_code() == 3
        assert broker.proc.stdout is not None
        assert "mwl-broker stopping" in broker.proc.stdout.read()  # an ordered stop
    finally:
        broker.stop()
    assert "embedded redis-server exited (killed by signal 9)" in log.read_text()
    with BrokerProcess(data, tmp_path / "restarted.log") as restarted:  # what a supervisor does
        assert accessions(restarted) == {1}


def test_a_missing_redis_server_binary_is_a_start_up_error_naming_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "broker.cli", "serve", "--hl7-port", "0", "--dicom-port", "0",
         "--admin-port", "0", "--data-dir", str(tmp_path / "data"),
         "--mappings-dir", str(MAPPINGS)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "MWL_BROKER_REDIS_SERVER_BINARY": str(tmp_path / "redis-server")},
    )  # fmt: skip
    assert result.returncode == 2
    assert "configuration error: redis_server_binary" in result.stderr
    assert "does not exist" in result.stderr
