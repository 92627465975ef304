"""The console's pages over real HTTP: a page needs a session (a redirect to the login
page, where the API answers 401), a role below the page's gets the 403 page, the static
files are the console's own and no page has an inline script or style (the CSP)."""

from __future__ import annotations

import re
from contextlib import closing
from pathlib import Path

import pytest
import redis

from broker.admin.pages import NAV
from broker.services.application import Services
from tests.integration.admin_helpers import Api, admin_settings, caller, services_for

PAGES = ["/", "/mappings", "/worklist", "/messages", "/scanners", "/outbound", "/users", "/account"]
TEMPLATES = Path(__file__).resolve().parents[2] / "broker" / "admin" / "templates"


@pytest.fixture
def services(redis_client: redis.Redis) -> Services:
    return services_for(admin_settings(), redis_client)


@pytest.mark.parametrize("path", PAGES)
def test_a_page_without_a_session_redirects_to_the_login_page(api: Api, path: str) -> None:
    with api.client() as client:
        answer = client.get(path)
    assert answer.status_code == 303 and answer.headers["location"] == "/login"


@pytest.mark.parametrize("who", ["viewer", "editor", "admin"])
def test_every_page_for_every_role(api: Api, who: str) -> None:
    assert {item.path for item in NAV} <= set(PAGES)  # every nav item is a page of its own
    client, _ = caller(api, who)
    with closing(client):
        for path in PAGES:
            answer = client.get(path)
            expected = 403 if path == "/users" and who != "admin" else 200
            assert answer.status_code == expected, (who, path)
            assert answer.headers["content-type"].startswith("text/html")
            assert "<main" in answer.text and 'name="csrf-token"' in answer.text
            nav = re.findall(r'<nav aria-label="Console">(.*?)</nav>', answer.text, re.S)[0]
            shown = re.findall(r'href="([^"]+)"', nav)
            assert shown == [i.path for i in NAV if who == "admin" or i.path != "/users"]
            if expected == 403:
                assert "may not open this page" in answer.text


def test_a_bearer_token_is_no_session_for_a_page(api: Api) -> None:
    client, _ = caller(api, "token")
    with closing(client):
        assert client.get("/").status_code == 303


def test_the_login_page_and_the_static_files_are_served_with_the_csp(api: Api) -> None:
    with api.client() as client:
        login = client.get("/login")
        assert login.status_code == 200 and 'id="login-form"' in login.text
        assert "default-src 'self'" in login.headers["content-security-policy"]
        for name in ("console.css", "api.js", "shell.js", "login.js", "dashboard.js", "users.js"):
            answer = client.get(f"/static/{name}")
            assert answer.status_code == 200, name
        assert client.get("/static/nothing.js").status_code == 404
        assert client.get("/api/nothing").headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("template", sorted(TEMPLATES.glob("*.html")), ids=lambda p: p.name)
def test_no_template_has_an_inline_script_or_style(template: Path) -> None:
    text = template.read_text(encoding="utf-8")
    assert re.findall(r"<script(?![^>]*\bsrc=)", text) == []
    assert "<style" not in text and "style=" not in text and " on" + "click=" not in text
    assert not re.search(r"\bon[a-z]+=", text)
