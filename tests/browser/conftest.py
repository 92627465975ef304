"""The console in a real browser: Debian's chromium, headless, driven by Playwright,
against a running admin API (real uvicorn on port 0, real redis-server).

``page_as(role)`` logs in through the login form; ``screenshot(page)`` saves the page
under ``build/screenshots/<test>.png`` (not committed) for a person to look at.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from broker.services.application import Services
from tests.conftest import require_tool
from tests.integration.admin_helpers import (
    PASSWORD,
    Api,
    admin_settings,
    running_api,
    services_for,
)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
TIMEOUT_MS = 15_000  # what a step may take before the test fails (never a sleep)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless chromium per module (``--no-sandbox`` when run as root). Not for the
    session: Playwright's sync API holds an event loop as the thread's running loop until
    it stops, and other tests call ``asyncio.run``."""
    executable = require_tool("chromium", "chromium")
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=args)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def console(redis_client: redis.Redis) -> Iterator[Api]:
    """The admin API and console, with a user of each role (password ``PASSWORD``)."""
    services: Services = services_for(admin_settings(), redis_client)
    services.live_mappings.load()
    with running_api(services) as running:
        yield running


@pytest.fixture
def new_page(browser: Browser, console: Api) -> Iterator[Callable[[], Page]]:
    """Pages of fresh browser contexts (no cookie), closed at the end of the test."""
    contexts: list[BrowserContext] = []

    def make() -> Page:
        context = browser.new_context(viewport=VIEWPORT, base_url=console.url)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def log_in(page: Page, user: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


@pytest.fixture
def page_as(new_page: Callable[[], Page]) -> Callable[[str], Page]:
    """A page logged in as the user of ``role`` through the login form, on the dashboard."""

    def login(role: str) -> Page:
        page = new_page()
        log_in(page, role)
        expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
        return page

    return login


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Page], Path]:
    """Saves the page under build/screenshots/<test>[-<n>].png."""
    taken = 0

    def take(page: Page) -> Path:
        nonlocal taken
        taken += 1
        name = request.node.name + ("" if taken == 1 else f"-{taken}")
        path = SCREENSHOTS / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
