"""An external Redis over TLS with an ACL user: Debian's redis-server (built with TLS) started
with ``tls-port``, ``tls-auth-clients yes`` and a user limited to the broker's key prefix.

The broker checks the server's certificate and host name, shows its own client
certificate, logs in as the ACL user with a password from a file, and never needs a
key outside its prefix nor a command the user was not granted.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from broker.errors import BrokerError, ConfigError
from broker.mllp.client import MLLPClient, summarize_ack
from broker.settings import Settings, load_settings
from tests.broker_runner import DATA, MAPPINGS, running_broker
from tests.conftest import TEST_SECRET, require_tool
from tests.tls_certs import Pair, issue, make_ca

PASSWORD = "tls-Redis-pw-7"
# What the broker is granted: its own keys and channels, every command but the dangerous
# ones, plus reading the configuration (the durability check) and INFO.
ACL = f"user mwl on >{PASSWORD} ~mwl:* &mwl:* +@all -@dangerous +config|get +info"


@dataclass(frozen=True)
class TLSRedis:
    port: int
    ca: Pair
    client: Pair

    def url(self, host: str = "127.0.0.1", query: str = "") -> str:
        return f"rediss://mwl@{host}:{self.port}/0" + (f"?{query}" if query else "")

    def admin(self) -> redis.Redis:
        """An independent client as the ACL user, over TLS."""
        return redis.Redis(
            host="127.0.0.1", port=self.port, username="mwl", password=PASSWORD, ssl=True,
            ssl_ca_certs=str(self.ca.cert), ssl_certfile=str(self.client.cert),
            ssl_keyfile=str(self.client.key), socket_timeout=10,
        )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TLSRedis]:
    binary = require_tool("redis-server", "redis-server")
    certs = tmp_path / "certs"
    ca = make_ca(certs, "Redis test CA")
    server = issue(ca, certs, "redis-server", dns="localhost", ip="127.0.0.1")
    client = issue(ca, certs, "mwl-broker")
    port = _free_port()
    conf = tmp_path / "redis.conf"  # the password in a file, not in redis-server's argv
    conf.write_text(
        f"port 0\ntls-port {port}\nbind 127.0.0.1 127.0.0.2\ntls-cert-file {server.cert}\n"
        f"tls-key-file {server.key}\ntls-ca-cert-file {ca.cert}\ntls-auth-clients yes\n"
        f"dir {tmp_path}\nappendonly yes\nappendfsync always\nmaxmemory-policy noeviction\n"
        f"user default off\n{ACL}\n"
    )
    log = tmp_path / "redis.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, str(conf)], stdout=out, stderr=subprocess.STDOUT)
    served = TLSRedis(port, ca, client)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"redis-server exited: {log.read_text()[-2000:]}"
            try:
                served.admin().ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield served
    finally:
        proc.terminate()
        proc.wait(30)


def settings(tmp_path: Path, url: str, **values: object) -> Settings:
    secret = tmp_path / "redis_password"
    secret.write_text(PASSWORD + "\n")
    base = {
        "hl7_host": "127.0.0.1", "hl7_port": 0, "dicom_host": "127.0.0.1", "dicom_port": 0,
        "admin_port": 0,
        "data_dir": tmp_path / "data", "mappings_dir": MAPPINGS, **values,
    }  # fmt: skip
    env = {
        "MWL_BROKER_REDIS_URL": url,
        "MWL_BROKER_REDIS_PASSWORD_FILE": str(secret),
        "MWL_BROKER_REDIS_KEY_SECRET": TEST_SECRET.decode(),  # required with an external Redis
    }
    return load_settings(environ=env, overrides=base)


def test_orders_are_stored_over_tls_as_the_acl_user(tmp_path: Path, tls_redis: TLSRedis) -> None:
    s = settings(
        tmp_path, tls_redis.url(), redis_tls_ca=tls_redis.ca.cert,
        redis_tls_cert=tls_redis.client.cert, redis_tls_key=tls_redis.client.key,
    )  # fmt: skip
    with running_broker(s) as broker:
        assert broker.endpoints is not None
        with MLLPClient("127.0.0.1", broker.endpoints.hl7_port, timeout=30) as client:
            ack = client.send((DATA / "orm_o01_nw_latin1.hl7").read_bytes().replace(b"\r\n", b"\r"))
        assert summarize_ack(ack).code == "AA", ack
    admin = tls_redis.admin()
    keys = list(admin.scan_iter(count=1000))
    assert keys and all(k.startswith(b"mwl:") for k in keys)
    admin.close()


def test_the_server_certificate_is_checked(tmp_path: Path, tls_redis: TLSRedis) -> None:
    client = {"redis_tls_cert": tls_redis.client.cert, "redis_tls_key": tls_redis.client.key}
    # no redis_tls_ca: the system's CAs do not know the test CA
    with (
        pytest.raises(ConfigError) as unknown_ca,
        running_broker(settings(tmp_path, tls_redis.url(), **client)),
    ):
        pass
    assert unknown_ca.value.setting == "redis_url" and "certificate" in unknown_ca.value.message
    # the certificate names 127.0.0.1 and localhost, not this address
    with (
        pytest.raises(ConfigError) as wrong_name,
        running_broker(
            settings(tmp_path, tls_redis.url("127.0.0.2"), redis_tls_ca=tls_redis.ca.cert, **client)
        ),
    ):
        pass
    assert "match" in wrong_name.value.message and "127.0.0.2" in wrong_name.value.message
    assert PASSWORD not in str(wrong_name.value)


def test_turning_the_check_off_in_the_url_is_refused(tmp_path: Path, tls_redis: TLSRedis) -> None:
    for query in ("ssl_cert_reqs=none", "ssl_check_hostname=False"):
        with (
            pytest.raises(ConfigError) as refused,
            running_broker(
                settings(tmp_path, tls_redis.url(query=query), redis_tls_ca=tls_redis.ca.cert)
            ),
        ):
            pass
        assert refused.value.setting == "redis_url" and "redis_tls_ca" in refused.value.message


def test_without_a_client_certificate_the_server_refuses(
    tmp_path: Path, tls_redis: TLSRedis
) -> None:
    with (
        pytest.raises(BrokerError) as refused,
        running_broker(settings(tmp_path, tls_redis.url(), redis_tls_ca=tls_redis.ca.cert)),
    ):
        pass
    assert PASSWORD not in str(refused.value)


def test_tls_settings_need_a_rediss_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as plain:
        settings(tmp_path, "redis://127.0.0.1:6379/0", redis_tls_ca=tmp_path / "ca.pem")
    assert plain.value.setting == "redis_tls_ca" and "rediss://" in plain.value.message
    with pytest.raises(ConfigError) as half:
        settings(tmp_path, "rediss://127.0.0.1:6379/0", redis_tls_cert=tmp_path / "c.pem")
    assert half.value.setting == "redis_tls_key"
    missing = settings(tmp_path, "rediss://127.0.0.1:6379/0", redis_tls_ca=tmp_path / "no.pem")
    with pytest.raises(ConfigError) as unreadable, running_broker(missing):
        pass
    assert unreadable.value.setting == "redis_tls_ca" and "no.pem" in unreadable.value.message
