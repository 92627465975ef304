"""The worklist browser in chromium: orders sent over MLLP appear as the active mapping
version maps them; an editor opens one, edits its station with a reason, sees a stale
change refused and reloads; the export and the purge's dry run."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Page, expect

from broker.audit.events import AuditType
from tests.browser.worklist_site import (
    mllp_listener,
    publish_station,
    send_over_mllp,
    site_console,
)
from tests.integration.admin_helpers import Api, Recorded
from tests.integration.hl7_seed import send_orders
from tests.integration.worklist_api_helpers import orm

Shot = Callable[[Page], Path]


@pytest.fixture
def console(redis_client: redis.Redis, tmp_path: Path) -> Iterator[Api]:
    with site_console(redis_client, tmp_path) as running:
        yield running


def open_worklist(page: Page) -> None:
    """The worklist page from the nav, once its script is ready."""
    page.get_by_role("link", name="Worklist").click()
    expect(page.get_by_role("heading", name="Worklist", level=1)).to_be_visible()
    expect(page.locator("#results-status")).to_have_text("Search to list the entries.")


def search_ct(page: Page) -> None:
    open_worklist(page)
    page.get_by_label("Modality").fill("CT")
    page.get_by_role("button", name="Search").click()


def edit_station(page: Page, screenshot: Shot) -> None:
    page.get_by_label("Attribute", exact=True).select_option("ScheduledStationAETitle")
    page.get_by_label("New value").fill("CT2")
    page.get_by_role("button", name="Edit…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Set ScheduledStationAETitle of entry")
    dialog.get_by_role("button", name="Confirm").click()  # no reason yet: asked for one
    expect(dialog.get_by_role("alert")).to_have_text(re.compile("Give a reason"))
    dialog.get_by_label("Reason").fill("the order went to the wrong scanner")
    screenshot(page)
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#entry-status")).to_have_text('ScheduledStationAETitle is now "CT2".')
    expect(page.locator("#attrs")).to_contain_text("Station AE title")
    expect(page.locator("#attrs dd").nth(4)).to_have_text("CT2")
    expect(page.get_by_role("row", name=re.compile("ACC-1"))).to_contain_text("CT2")


def test_an_order_over_mllp_is_opened_and_its_station_edited(
    page_as: Callable[[str], Page], console: Api, screenshot: Shot
) -> None:
    services = console.services
    assert publish_station(services, "CT1") == 2
    with mllp_listener(services) as port:
        send_over_mllp(port, orm(1), orm(2, name="Roe^Jane"))
    page = page_as("editor")
    search_ct(page)
    expect(page.locator("#results-status")).to_have_text("2 entries shown.")
    row = page.get_by_role("row", name=re.compile("ACC-1"))
    expect(row).to_contain_text("CT1")  # the station of mapping version 2
    expect(row).to_contain_text("Doe John")
    screenshot(page)
    row.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/worklist#entry=[0-9a-f]+$"))
    expect(page.locator("#h-entry")).to_be_focused()
    expect(page.locator("#dump")).to_contain_text("(0040,0001) ScheduledStationAETitle AE")
    expect(page.locator("#attrs dt").last).to_have_text("Mapping version")
    expect(page.locator("#attrs dd").last).to_have_text("2")  # the version that mapped it
    audit = services.audit
    assert isinstance(audit, Recorded)
    opened = [e.details["view"] for e in audit.events if e.type is AuditType.ENTRY_READ]
    assert opened == ["json+dump"]  # one open of the entry, one record
    screenshot(page)
    edit_station(page, screenshot)
    screenshot(page)
    entry_id = page.url.rsplit("=", 1)[1]
    stale = services.entries.read(entry_id).revision
    services.entries.set_status(entry_id, "ARRIVED", expect=stale, reason="desk", user="test")
    page.get_by_label("New status").select_option("READY")
    page.get_by_role("button", name="Set status…").click()
    page.get_by_role("dialog").get_by_label("Reason").fill("patient is ready")
    page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("alert").first).to_contain_text("changed since it was read")
    expect(page.get_by_role("button", name="Reload the entry")).to_be_focused()
    screenshot(page)
    page.get_by_role("button", name="Reload the entry").click()
    expect(page.locator("#attrs dd").nth(10)).to_have_text("ARRIVED")
    page.get_by_role("link", name="Explain which scanners see it").click()
    expect(page.get_by_label("or entry id")).to_have_value(entry_id)
    page.get_by_label("Scanner (AE title)").select_option("CT1")
    page.get_by_label("Date asked (optional)").fill("none")
    page.get_by_role("button", name="Explain").click()
    expect(page.get_by_role("status")).to_have_text(
        "CT1 sees 0 of 1. Not seen: query key ScheduledStationAETitle = CT1 does not match the "
        "entry's CT2 (and 1 more reason, below)."
    )


def test_the_export_downloads_the_search_and_the_purge_says_what_would_go(
    page_as: Callable[[str], Page], console: Api, screenshot: Shot
) -> None:
    long_ago = orm(8).replace(b"20261126093000", b"20200302080000")  # stale: a purge takes it
    with mllp_listener(console.services) as port:
        send_over_mllp(port, orm(7), long_ago)
    page = page_as("editor")
    open_worklist(page)
    page.get_by_label("Scheduled from").fill("2026-11-26")
    page.get_by_label("Scheduled to").fill("2026-11-26")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("row", name=re.compile("ACC-7"))).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Export CSV").click()
    saved = Path(download.value.path()).read_text(encoding="utf-8")
    assert download.value.suggested_filename == "worklist.csv"
    assert saved.startswith("entry_id,accession,") and ",ACC-7," in saved
    page.get_by_role("button", name="Show what would go").click()
    expect(page.locator("#purge-status")).to_have_text(re.compile(r"^A purge now would remove \d"))
    stale = page.get_by_role("row", name=re.compile("ACC-8"))
    expect(stale).to_contain_text("2020-03-02")
    expect(stale).to_contain_text("stale")
    page.get_by_role("button", name="Scheduled").click()  # sorts newest first
    expect(page.locator("#sort-col")).to_have_attribute("aria-sort", "descending")
    screenshot(page)
    delete_the_entry(page, "ACC-7")
    screenshot(page)


def delete_the_entry(page: Page, accession: str) -> None:
    """Delete the entry of ``accession``, going back once with Escape."""
    page.get_by_role("row", name=re.compile(accession)).get_by_role("link").click()
    page.get_by_role("button", name="Delete entry…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Reason")).to_be_focused()
    page.keyboard.press("Escape")  # back: nothing happens
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("row", name=re.compile(accession))).to_be_visible()
    page.get_by_role("button", name="Delete entry…").click()
    dialog.get_by_label("Reason").fill("a test order")
    dialog.get_by_role("button", name="Confirm").click()
    expect(page.locator("#entry-status")).to_have_text("The entry was deleted.")
    expect(page.locator("#results-status")).to_have_text("No entry matches.")
    expect(page.get_by_role("button", name="Delete entry…")).to_be_hidden()


def test_more_entries_pages_on(page_as: Callable[[str], Page], console: Api) -> None:
    send_orders(console.services, 101)  # through the intake: the page size and one more
    page = page_as("viewer")
    open_worklist(page)
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#results-status")).to_have_text(
        "100 entries shown; more match (More entries)."
    )
    page.get_by_role("button", name="More entries").click()
    expect(page.locator("#results-status")).to_have_text("101 entries shown.")
    expect(page.get_by_role("button", name="More entries")).to_be_hidden()


def test_a_viewer_gets_no_change_controls(console: Api) -> None:
    pages = {}
    for who in ("viewer", "editor"):
        client, _ = console.login(who)
        with closing(client):
            pages[who] = client.get("/worklist").text
    for marker in ('id="edit"', 'id="purge"', "<dialog"):
        assert marker not in pages["viewer"] and marker in pages["editor"], marker
    assert "<option>ScheduledStationAETitle</option>" in pages["editor"]
