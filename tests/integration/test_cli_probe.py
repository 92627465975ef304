"""``mwl-broker probe live|ready`` against a real admin listener (HTTP and HTTPS): the
answer as an exit status and the broker's reason, for HEALTHCHECK lines and exec probes."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis

from broker.admin.app import Listeners
from broker.cli.main import main
from broker.common.tls import server_context
from broker.services.application import Services
from tests.integration.admin_helpers import running_api, site_services
from tests.tls_certs import issue, make_ca

UP: Listeners = lambda: {"hl7": 1, "dicom": 2}  # noqa: E731
HL7_DOWN: Listeners = lambda: {"hl7": None, "dicom": 2}  # noqa: E731


@pytest.fixture
def services(redis_client: redis.Redis, tmp_path: Path) -> Services:
    return site_services(redis_client, tmp_path, "")


def config(tmp_path: Path, port: int, *lines: str) -> str:
    path = tmp_path / "probe.toml"
    body = "\n".join(["[broker]", 'admin_host = "0.0.0.0"', f"admin_port = {port}", *lines])
    path.write_text(body + "\n", encoding="utf-8")
    return str(path)


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def test_live_and_ready_over_loopback_for_a_listener_on_every_address(
    services: Services, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_api(services, listeners=UP) as api:
        path = config(tmp_path, port_of(api.url))
        assert main(["probe", "live", "--config", path]) == 0
        assert main(["probe", "ready", "--config", path]) == 0
    assert capsys.readouterr().out.splitlines() == ["live: yes", "ready: yes"]


def test_not_ready_says_what_is_down(
    services: Services, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_api(services, listeners=HL7_DOWN) as api:
        path = config(tmp_path, port_of(api.url))
        assert main(["probe", "live", "--config", path]) == 0
        assert main(["probe", "ready", "--config", path]) == 1
    err = capsys.readouterr().err
    assert "ready: no (HTTP 503: the hl7 listener is not up)" in err


def test_no_broker_is_not_alive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:  # a port nobody listens on once it is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["probe", "live", "--config", config(tmp_path, port)]) == 1
    assert "live: no (no answer from http://127.0.0.1:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("lines", "setting"),
    [(("admin_enabled = false",), "admin_enabled"), ((), "admin_port")],
)
def test_without_an_admin_listener_to_ask_it_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: tuple[str, ...], setting: str
) -> None:
    assert main(["probe", "ready", "--config", config(tmp_path, 0, *lines)]) == 2
    assert f"configuration error: {setting}:" in capsys.readouterr().err


def test_over_https_with_a_certificate_for_another_name(
    services: Services, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = make_ca(tmp_path / "pki")
    cert = issue(ca, tmp_path / "pki", "broker", dns="mwl.example.org")
    tls = server_context("admin_tls_cert", cert.cert, cert.key)
    with running_api(services, listeners=UP, tls=tls) as api:
        assert api.url.startswith("https://")
        lines = (f'admin_tls_cert = "{cert.cert}"', f'admin_tls_key = "{cert.key}"')
        path = config(tmp_path, port_of(api.url), *lines)
        assert main(["probe", "ready", "--config", path]) == 0
    assert capsys.readouterr().out == "ready: yes\n"
