"""Several ``mwl-broker serve`` processes on one host and one Redis, as real processes on
real sockets: two sharing their ports (``listen_reuse_port``), two splitting the roles
(``roles``); orders taken by one are found by the other, one killed leaves the other
serving, a published mapping version reaches both."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import redis

from broker.mllp.client import MLLPClient, summarize_ack
from broker.services.application import Services
from broker.services.auth import Role
from broker.store.connection import EmbeddedRedis
from broker.store.mapping_versions import read_mapping_dir
from broker.store.message_records import MessageQuery
from tests.broker_runner import MAPPINGS, broker_settings
from tests.conformance.broker_process import BrokerProcess, quiet_pynetdicom
from tests.conftest import TEST_SECRET
from tests.integration.test_serve_redis import accessions, order
from tests.waiting import wait_for


def shared_env(server: EmbeddedRedis, **settings: str) -> dict[str, str]:
    """The environment of a broker on the test's redis-server, /metrics open to loopback."""
    env = {
        "MWL_BROKER_REDIS_URL": server.url,
        "MWL_BROKER_REDIS_KEY_SECRET": TEST_SECRET.decode(),
        "MWL_BROKER_METRICS_ALLOW": "127.0.0.1",
    }
    env.update({f"MWL_BROKER_{name.upper()}": value for name, value in settings.items()})
    return env


@contextmanager
def brokers(
    tmp_path: Path,
    server: EmbeddedRedis,
    *settings: dict[str, str],
    share_ports: bool = False,
    together: bool = False,
) -> Iterator[list[BrokerProcess]]:
    """One broker per ``settings``; with ``share_ports`` the later ones on the first's HL7
    and DICOM ports (each keeps an admin port of its own, to be asked what it did); with
    ``together`` all started at once, as a supervisor starts them."""
    quiet_pynetdicom()
    tmp_path.mkdir(exist_ok=True)

    def start(n: int, ports: tuple[int, int, int]) -> BrokerProcess:
        env = shared_env(server, **settings[n])
        log = tmp_path / f"broker-{n}.log"
        return BrokerProcess(tmp_path / f"data-{n}", log, env=env, ports=ports)

    with ExitStack() as stack:
        started: list[BrokerProcess] = []
        if together:
            with ThreadPoolExecutor(len(settings)) as pool:
                futures = [pool.submit(start, n, (0, 0, 0)) for n in range(len(settings))]
            for future in futures:  # every one that started is stopped, then a failure raised
                if future.exception() is None:
                    stack.callback(future.result().stop)
            started = [future.result() for future in futures]
        for n in range(len(started), len(settings)):
            ports = (0, 0, 0)
            if share_ports and started:
                ports = (started[0].hl7_port, started[0].dicom_port, 0)
            started.append(start(n, ports))
            stack.callback(started[-1].stop)
        yield started


@contextmanager
def site(tmp_path: Path, server: EmbeddedRedis) -> Iterator[tuple[Services, dict[str, str]]]:
    """The use cases on the brokers' Redis, and the headers of a viewer's API token."""
    client = redis.Redis.from_url(server.url, socket_timeout=10)
    try:
        services = Services(broker_settings(tmp_path, redis_url=server.url), client)
        token, _ = services.auth.create_token(Role.VIEWER, label="test", by="test")
        yield services, {"Authorization": f"Bearer {token}"}
    finally:
        client.close()


def status(broker: BrokerProcess, headers: dict[str, str]) -> dict[str, Any]:
    """A broker's ``GET /api/status``."""
    answer = httpx.get(f"{broker.admin_url}/api/status", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def mapping_version_is(broker: BrokerProcess, headers: dict[str, str], number: int) -> bool:
    return bool(status(broker, headers)["mapping_version"] == number)


def metric(broker: BrokerProcess, name: str) -> float:
    """The sum of a counter's samples in a broker's ``/metrics``."""
    text = httpx.get(f"{broker.admin_url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((f"{name}{{", f"{name} "))
    )


def send(port: int, n: int) -> str:
    """Order ``n`` on a connection of its own; its ACK code."""
    with MLLPClient("127.0.0.1", port, timeout=30) as client:
        return summarize_ack(client.send(order(n))).code


def test_two_brokers_sharing_their_ports_both_serve_and_the_survivor_takes_over(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    reuse = {"listen_reuse_port": "true"}
    with brokers(tmp_path, redis_server, reuse, reuse, share_ports=True) as (first, second):
        assert (first.hl7_port, first.dicom_port) == (second.hl7_port, second.dicom_port)
        sent: list[int] = []

        def both_took_orders() -> bool:
            sent.append(len(sent) + 1)
            assert send(first.hl7_port, sent[-1]) == "AA"
            return all(metric(b, "mwl_broker_hl7_messages_total") for b in (first, second))

        # each order on a new connection: the kernel hands them to either process
        wait_for(both_took_orders, "orders taken by both brokers on the shared MLLP port")

        def both_answered() -> bool:  # whichever took an order, every association finds it
            assert set(sent) <= accessions(first)
            return all(
                metric(b, "mwl_broker_dicom_associations_accepted_total") for b in (first, second)
            )

        wait_for(both_answered, "C-FINDs answered by both brokers on the shared DICOM port")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        for n in range(1000, 1020):  # every new connection goes to the survivor
            assert send(second.hl7_port, n) == "AA"
            assert n in accessions(second)
        assert second.exit_code() is None


def test_split_roles_intake_in_one_process_queries_in_the_other(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    intake = {"roles": "hl7,outbound,admin"}
    queries = {"roles": "dicom,admin"}
    with brokers(tmp_path, redis_server, intake, queries) as (hl7, dicom):
        assert hl7.dicom_port == 0 and dicom.hl7_port == 0
        assert "DICOM MWL  off (not in roles)" in hl7.banner
        assert [send(hl7.hl7_port, n) for n in (1, 2, 3)] == ["AA"] * 3
        assert accessions(dicom) == {1, 2, 3}
        with site(tmp_path, redis_server) as (_, viewer):
            for broker, listeners in (
                (hl7, {"hl7": hl7.hl7_port}),
                (dicom, {"dicom": dicom.dicom_port}),
            ):
                # ready: its own listener is up, the one it does not run is not missed
                ready = httpx.get(f"{broker.admin_url}/readyz", timeout=10)
                assert ready.status_code == 200, ready.text
                assert status(broker, viewer)["listeners"] == listeners
        dicom.proc.send_signal(signal.SIGKILL)
        dicom.proc.wait()
        assert send(hl7.hl7_port, 4) == "AA"  # the intake does not depend on the other
    with brokers(tmp_path / "again", redis_server, queries) as (restarted,):
        assert accessions(restarted) == {1, 2, 3, 4}


def test_a_published_mapping_version_reaches_every_broker(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    with (
        brokers(tmp_path, redis_server, {}, {}, together=True) as both,
        site(tmp_path, redis_server) as (services, viewer),
    ):
        versions = services.mapping_versions
        assert len(list(versions.history(10))) == 1  # started together, seeded once
        files = read_mapping_dir(MAPPINGS)
        files["orders.yaml"] = files["orders.yaml"].replace(
            "AdmissionID: PV1-19", 'AdmissionID: {value: "V2"}'
        )
        assert versions.publish(files, author="test", comment="scale-out").version.number == 2
        for n, broker in enumerate(both, start=1):
            loaded = partial(mapping_version_is, broker, viewer, 2)
            wait_for(loaded, f"broker {n} loaded version 2")
            assert send(broker.hl7_port, n) == "AA"
        page = services.messages.find(MessageQuery(limit=10))
        records = [services.messages.get(item.id) for item in page.items]
        assert len(records) == 2
        assert all(record.mapping_version.startswith("v2:") for record in records)
