"""Run a real broker in-process, on its own event loop thread, for integration tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from broker.app import Broker
from broker.settings import Settings, load_settings
from tests.conftest import TEST_SECRET

REPO = Path(__file__).resolve().parents[1]
MAPPINGS = REPO / "mappings"
DATA = Path(__file__).resolve().parent / "data"


def broker_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a broker on loopback with OS-assigned ports."""
    values: dict[str, Any] = {
        "hl7_host": "127.0.0.1",
        "hl7_port": 0,
        "dicom_host": "127.0.0.1",
        "dicom_port": 0,
        "admin_host": "127.0.0.1",
        "admin_port": 0,
        "data_dir": data_dir,
        "mappings_dir": MAPPINGS,
        "hl7_idle_timeout": 30,
    }
    values.update(overrides)
    if values.get("redis_url") and "redis_key_secret" not in values:
        values["redis_key_secret"] = TEST_SECRET.decode()  # required with an external Redis
    return load_settings(environ={}, overrides=values)


@contextmanager
def running_broker(settings: Settings) -> Iterator[Broker]:
    """Start a broker, yield it once it listens, stop it in order afterwards."""
    loop = asyncio.new_event_loop()
    broker = Broker(settings)
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(broker.start())
        except BaseException as e:  # handed to the test thread below
            failure.append(e)
            started.set()
            loop.close()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(broker.stop())
        loop.close()

    thread = threading.Thread(target=run, name="broker-under-test", daemon=True)
    thread.start()
    if not started.wait(60):
        raise TimeoutError("broker did not start within 60 s")
    if failure:
        thread.join()
        raise failure[0]
    try:
        yield broker
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(60)
        assert not thread.is_alive(), "broker did not stop within 60 s"
