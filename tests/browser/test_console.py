"""The console's pages in chromium: login, the live dashboard (and its table of stations),
keyboard navigation, users and tokens (a password reset in the page's own dialog), and
what a viewer may not open."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from broker.admin.pages import NAV
from broker.store import counts as counts_module
from broker.store.keys import KeySchema
from tests.browser.conftest import VIEWPORT, log_in
from tests.integration.admin_helpers import Api
from tests.integration.hl7_seed import send, send_orders, send_refused, two_step_order
from tests.redis_replies import as_text

Shot = Callable[[Page], Path]


def test_a_wrong_password_is_announced_then_the_right_one_opens_the_dashboard(
    new_page: Callable[[], Page], screenshot: Shot
) -> None:
    page = new_page()
    log_in(page, "editor", "not the password")
    alert = page.get_by_role("alert")
    expect(alert).to_have_text("invalid user name or password")
    expect(page.get_by_label("Password")).to_be_focused()
    screenshot(page)
    log_in(page, "editor")
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/$"))


def test_the_dashboard_shows_new_messages_without_a_reload(
    page_as: Callable[[str], Page], console: Api, screenshot: Shot
) -> None:
    page = page_as("viewer")
    expect(page.locator("#m-hour")).to_have_text("0")
    expect(page.locator("#s-ae")).to_have_text(console.services.settings.ae_title)
    send_orders(console.services, 3)
    send_refused(console.services)
    expect(page.locator("#m-hour")).to_have_text("4")
    expect(page.locator("#ack-AA")).to_have_text("3")
    expect(page.locator("#ack-AE")).to_have_text("1")
    expect(page.locator("#w-total")).to_have_text("3")
    expect(page.get_by_role("status")).to_contain_text("Messages in the last hour: 4")
    errors = page.locator("#e-rows")
    expect(errors).to_contain_text("PID-3")
    expect(errors.get_by_role("link")).to_have_attribute("href", re.compile(r"^/messages\?id="))
    screenshot(page)


def _station_cells(page: Page, station: str) -> Locator:
    return page.locator("#w-stations tr").filter(has_text=station).locator("td")


def test_the_dashboard_table_of_stations_updates_live(
    page_as: Callable[[str], Page],
    console: Api,
    screenshot: Shot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = console.services
    services.worklist_counts.max_age = 0.5  # counted again within the test's patience
    send_orders(services, 2)
    assert send(services, two_step_order()) == "AA"  # steps on MR1 and MR2 (a new station
    page = page_as("viewer")  # shows within a minute: there from the first snapshot here)
    table = page.get_by_role("table", name=re.compile("^Entries by station and state"))
    expect(table.get_by_role("columnheader", name=re.compile("^Ended"))).to_be_visible()
    expect(_station_cells(page, "MR1")).to_have_text(["1", "0", "1"])  # open, ended, entries
    keys = KeySchema(services.settings.redis_key_prefix)
    (entry_id,) = (as_text(i) for i in services.client.smembers(keys.by_station("MR1")))
    revision = services.entries.read(entry_id).revision
    services.entries.cancel(entry_id, expect=revision, reason="test", user="test")
    expect(_station_cells(page, "MR1")).to_have_text(["0", "1", "1"])  # without a reload
    expect(_station_cells(page, "MR2")).to_have_text(["1", "0", "1"])
    expect(page.locator("tfoot td")).to_have_text(["3", "1", "4"])  # the ORMs name none
    expect(page.locator("#w-asof")).to_contain_text("s before these numbers")
    screenshot(page)
    monkeypatch.setattr(counts_module, "MAX_SCRIPT_IDS", 0)  # each would walk the ended id
    expect(_station_cells(page, "MR1")).to_have_text(["—not counted", "—not counted", "1"])
    expect(page.locator("#w-left-out")).to_contain_text("more than 0")
    screenshot(page)


def test_every_nav_item_is_reached_by_the_keyboard(
    page_as: Callable[[str], Page], screenshot: Shot
) -> None:
    page = page_as("admin")
    page.locator("body").focus()
    reached: list[str] = []
    wanted = {item.label for item in NAV}
    for _ in range(30):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.textContent.trim()"))
        if wanted <= set(reached):
            break
    assert reached[0] == "Skip to content"
    assert wanted <= set(reached), reached
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")  # the focused nav link opens its page
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Dashboard")
    screenshot(page)


def test_an_admin_adds_a_user_and_creates_a_token_shown_once(
    page_as: Callable[[str], Page], screenshot: Shot
) -> None:
    page = page_as("admin")
    page.get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name="Users and tokens", level=1)).to_be_visible()
    users = page.get_by_role("region", name="Users")
    users.get_by_label("Name", exact=True).fill("dana")
    users.get_by_label("Role", exact=True).select_option("editor")
    users.get_by_label("Initial password").fill("dana's long password")
    users.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("status")).to_have_text("User dana added.")
    expect(page.get_by_role("row", name=re.compile("dana"))).to_be_visible()
    tokens = page.get_by_role("region", name="API tokens")
    tokens.get_by_label("Label").fill("RIS feed")
    tokens.get_by_label("Role", exact=True).select_option("editor")
    tokens.get_by_role("button", name="Create token").click()
    secret = page.locator("#secret")
    expect(secret).to_have_text(re.compile(r"^mwlb_[0-9a-f]{16}_"))
    expect(page.get_by_role("row", name=re.compile("RIS feed"))).to_be_visible()
    screenshot(page)
    page.reload()
    expect(page.get_by_role("row", name=re.compile("RIS feed"))).to_be_visible()
    expect(page.locator("#secret-box")).to_be_hidden()


def test_an_admin_resets_a_password_in_a_dialog_and_the_user_logs_in_with_it(
    page_as: Callable[[str], Page], new_page: Callable[[], Page], screenshot: Shot
) -> None:
    page = page_as("admin")
    page.get_by_role("link", name="Users").click()
    opener = page.get_by_role("button", name="Reset password: editor")
    opener.click()
    dialog = page.get_by_role("dialog", name="Reset the password of editor")
    password, again = dialog.get_by_label("New password", exact=True), dialog.get_by_label("Repeat")
    expect(password).to_be_focused()
    expect(password).to_have_attribute("autocomplete", "new-password")
    expect(dialog).to_contain_text("At least 12 characters.")
    page.keyboard.press("Escape")  # cancels: focus back on the button
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()
    page.keyboard.press("Enter")
    expect(password).to_be_focused()
    page.keyboard.type("too short")
    page.keyboard.press("Tab")
    page.keyboard.type("too short")
    page.keyboard.press("Enter")  # the server's refusal, said in the dialog
    alert = dialog.get_by_role("alert")
    expect(alert).to_have_text("the password must have at least 12 characters")
    expect(password).to_be_focused()
    expect(page.locator("#alert")).to_be_hidden()
    screenshot(page)
    password.fill("editor's new long password")
    again.fill("editor's new long passwort")
    dialog.get_by_role("button", name="Set password").click()
    expect(alert).to_contain_text("The two passwords differ")
    expect(again).to_be_focused()
    again.fill("editor's new long password")
    dialog.get_by_role("button", name="Set password").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status")).to_have_text(
        "The password of editor was reset; their sessions ended."
    )
    expect(opener).to_be_focused()
    expect(page.locator("#reset-password")).to_have_value("")  # cleared with the dialog
    screenshot(page)
    other = new_page()
    log_in(other, "editor")  # the old password no longer opens
    expect(other.get_by_role("alert")).to_have_text("invalid user name or password")
    log_in(other, "editor", "editor's new long password")
    expect(other.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    page.get_by_role("button", name="Reset password: admin").click()  # one's own: log in again
    dialog = page.get_by_role("dialog", name="Reset the password of admin")
    dialog.get_by_label("New password", exact=True).fill("admin's new long password")
    dialog.get_by_label("Repeat").fill("admin's new long password")
    dialog.get_by_role("button", name="Set password").click()
    expect(page).to_have_url(re.compile(r"/login$"))


def test_a_viewer_gets_no_users_page(page_as: Callable[[str], Page], screenshot: Shot) -> None:
    page = page_as("viewer")
    nav = page.get_by_role("navigation", name="Console")
    expect(nav.get_by_role("link")).to_have_count(len(NAV) - 1)
    expect(nav.get_by_role("link", name="Users")).to_have_count(0)
    answer = page.goto("/users")
    assert answer is not None and answer.status == 403
    expect(page.get_by_role("heading", name="Not allowed", level=1)).to_be_visible()
    screenshot(page)


def test_without_javascript_the_login_says_so_and_puts_no_password_in_an_address(
    browser: Browser, console: Api
) -> None:
    context = browser.new_context(
        viewport=VIEWPORT, base_url=console.url, java_script_enabled=False
    )
    try:
        page = context.new_page()
        page.goto("/login")
        # (headless chromium parses <noscript> as text even with scripts off: read the source)
        assert '<noscript><p class="alert">The console needs JavaScript' in page.content()
        expect(page.get_by_role("button", name="Log in")).to_be_disabled()
        page.get_by_label("User name").fill("editor")
        page.get_by_label("Password").fill("a secret password")
        page.get_by_label("Password").press("Enter")  # no submission: its button is disabled
        assert page.url == f"{console.url}/login"
    finally:
        context.close()
