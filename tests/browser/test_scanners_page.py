"""The scanners page in chromium: the profiles with the broker's defaults, and why a
scanner does not see an entry (another station's order), read from the page."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Page, expect

from tests.browser.worklist_site import publish_station, site_console
from tests.integration.admin_helpers import Api
from tests.integration.worklist_api_helpers import orm, send

Shot = Callable[[Page], Path]


@pytest.fixture
def console(redis_client: redis.Redis, tmp_path: Path) -> Iterator[Api]:
    with site_console(redis_client, tmp_path) as running:
        yield running


def explain(page: Page, ae_title: str, accession: str, station: str = "") -> None:
    form = page.get_by_role("region", name="Why does a scanner")
    form.get_by_label("Scanner (AE title)").select_option(ae_title)
    form.get_by_label("Accession number").fill(accession)
    form.get_by_label("Station asked").fill(station)
    form.get_by_role("button", name="Explain").click()


def test_the_profiles_and_why_a_station_does_not_see_another_ones_order(
    page_as: Callable[[str], Page], console: Api, screenshot: Shot
) -> None:
    publish_station(console.services, "CT2")
    send(console.services, orm(3))  # through the intake: scheduled on CT2 by the mapping
    page = page_as("viewer")
    page.get_by_role("link", name="Scanners").click()
    expect(page.get_by_role("heading", name="Scanners", level=1)).to_be_visible()
    ct1 = page.get_by_role("row", name=re.compile(r"^CT1 "))
    expect(ct1).to_contain_text("127.0.0.1/32")
    expect(ct1).to_contain_text("stations CT1")
    expect(ct1).to_contain_text("CANCELED, COMPLETED, DISCONTINUED")
    expect(page.get_by_role("row", name=re.compile(r"^ALL "))).to_contain_text("every station")
    screenshot(page)
    explain(page, "CT1", "ACC-3")
    verdict = page.get_by_role("status")
    expect(verdict).to_have_text(
        re.compile(r"^CT1 sees 0 of 1\. Not seen: .*CT2.* more reasons, below\)\.$")
    )
    expect(page.get_by_role("heading", name="The answer")).to_be_focused()
    expect(page.locator("#explain-text")).to_contain_text("NOT SEEN")
    screenshot(page)
    page.get_by_label("Date asked (optional)").fill("none")  # the order is not for today
    explain(page, "ALL", "ACC-3", "*")  # a scanner that asks for every station
    expect(verdict).to_have_text("ALL sees 1 of 1.")
    page.get_by_label("Date asked (optional)").fill("yesterday")
    page.get_by_role("button", name="Explain").click()
    expect(page.get_by_role("alert")).to_have_text(re.compile("^date: YYYYMMDD"))
    expect(page.get_by_role("heading", name="The answer")).to_be_hidden()
    screenshot(page)
