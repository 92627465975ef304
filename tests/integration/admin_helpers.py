"""A real admin API for the tests: uvicorn on 127.0.0.1 port 0, a real redis-server, and
users and a token of every role."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
from argon2 import PasswordHasher

from broker.admin.app import Listeners, create_app
from broker.admin.server import MAX_CONCURRENCY, AdminServer
from broker.audit.events import AuditEvent
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.services.application import Services
from broker.services.auth import AuthService, Role
from broker.settings import Settings, load_settings
from broker.store.keys import KeySchema
from broker.store.users import UserStore
from tests.broker_runner import MAPPINGS
from tests.integration.dicom_find_helpers import AE_TITLE
from tests.integration.test_services import ENVIRON

PASSWORD = "a long enough password"
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # Argon2id, cheap for tests


@dataclass
class Api:
    """A running admin API: its base URL and its services."""

    url: str
    services: Services

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def login(self, user: str, password: str = PASSWORD) -> tuple[httpx.Client, str]:
        """A client holding ``user``'s session cookie, and the session's CSRF token."""
        client = self.client()
        answer = client.post("/api/session", json={"user": user, "password": password})
        assert answer.status_code == 200, answer.text
        return client, answer.json()["csrf"]


def admin_settings(**overrides: Any) -> Settings:
    values = {"admin_host": "127.0.0.1", "admin_port": 0, "mappings_dir": MAPPINGS, **overrides}
    return load_settings(environ={}, overrides=values)


def site_services(
    client: redis.Redis,
    tmp_path: Path,
    scanners: str,
    *,
    audit: AuditSink = NO_AUDIT,
    **overrides: Any,
) -> Services:
    """:func:`services_for` a site whose config file holds ``scanners`` (scanner profile
    tables), with the DICOM and admin listeners on loopback port 0, the test key secret and
    the mapping version loaded; ``overrides`` are further settings."""
    config = tmp_path / "broker.toml"
    config.write_text(scanners, encoding="utf-8")
    values = {
        "admin_host": "127.0.0.1",
        "admin_port": 0,
        "mappings_dir": MAPPINGS,
        "dicom_host": "127.0.0.1",
        "dicom_port": 0,
        "ae_title": AE_TITLE,
        **overrides,
    }
    settings = load_settings(config_file=config, environ=ENVIRON, overrides=values)
    services = services_for(settings, client, audit)
    services.live_mappings.load()
    return services


def services_for(settings: Settings, client: redis.Redis, audit: AuditSink = NO_AUDIT) -> Services:
    """Services whose auth hashes with cheap Argon2id parameters, with a user per role."""
    services = Services(settings, client, audit)
    users = UserStore(client, KeySchema(settings.redis_key_prefix))
    seconds = settings.admin_session_minutes * 60
    auth = AuthService(users, session_seconds=seconds, audit=audit, hasher=FAST)
    services.__dict__["auth"] = auth  # the cached property, built with the cheap hasher
    for role in Role:
        auth.add_user(role.value, PASSWORD, role, by="test")
    return services


@contextmanager
def running_api(
    services: Services,
    *,
    listeners: Listeners | None = None,
    tls: Any = None,
    max_concurrency: int = MAX_CONCURRENCY,
) -> Iterator[Api]:
    """The admin API served by uvicorn on its own event loop (a thread) until the end."""
    settings = services.settings
    app = create_app(services, settings, listeners=listeners or (lambda: {"hl7": 1, "dicom": 2}))
    server = AdminServer(app, host="127.0.0.1", port=0, tls=tls, max_concurrency=max_concurrency)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="admin-api", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=30)
        try:
            yield Api(f"{server.scheme}://127.0.0.1:{server.port}", services)
        finally:
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=30)
            services.close()  # the search process, if a broad search started it
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


CALLERS = ("none", "viewer", "editor", "admin", "token")  # the token has the viewer role


def caller(api: Api, who: str) -> tuple[httpx.Client, dict[str, str]]:
    """A client for ``who`` (one of CALLERS) and the headers a change needs (CSRF for a
    session)."""
    if who == "none":
        return api.client(), {}
    if who == "token":
        text, _ = api.services.auth.create_token(Role.VIEWER, label="t", by="test")
        return api.client(headers={"Authorization": f"Bearer {text}"}), {}
    client, csrf = api.login(who)
    return client, {"X-CSRF-Token": csrf}


def check_route(
    api: Api, who: str, method: str, path: str, expected: int, **request: Any
) -> httpx.Response:
    """Call ``method path`` as ``who``; assert ``expected`` and, for an error, a problem+json
    body (and a Bearer challenge with a 401). A route-matrix module's one assertion."""
    client, headers = caller(api, who)
    with closing(client):
        answer = client.request(method, path, headers=headers, **request)
    assert answer.status_code == expected, (who, method, path, answer.text)
    if answer.status_code >= 400:
        assert answer.headers["content-type"] == "application/problem+json"
        body = answer.json()
        assert body["status"] == answer.status_code and body["title"] and body["detail"]
    if answer.status_code == 401:
        assert answer.headers["www-authenticate"].startswith("Bearer")
    return answer


class Recorded:
    """An audit sink that keeps what it is given (the ``audit`` fixture)."""

    log_phi = False

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)
