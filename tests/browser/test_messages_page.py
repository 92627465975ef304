"""The message log page in chromium: an order the mapping cannot map (its modality has no
station row) is found with "errors only", its ERR location read; once the mapping knows
the code, it is reprocessed from the page (AA, an entry); another refused message is
dismissed and leaves the error list. A viewer opens a message from a link and has no
actions; a bad filter is answered in the alert."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Dialog, Page, expect

from broker.services.application import Services
from tests.broker_runner import MAPPINGS
from tests.integration.admin_helpers import Api
from tests.integration.hl7_seed import order, send, send_orders, send_refused, two_step_order

Shot = Callable[[Page], Path]
ORDERS = (MAPPINGS / "orders.yaml").read_text(encoding="utf-8")
NO_ROWS = '    rows: {}\n      # CT: CT_SCANNER_1\n      # MR: MR_3T\n    default: ""\n'
assert NO_ROWS in ORDERS


def orders_with(rows: str) -> str:
    """orders.yaml with these station_by_modality rows and no default: a modality without
    a row is refused (AE 103)."""
    return ORDERS.replace(NO_ROWS, f"    rows: {{{rows}}}\n")


def publish_station_rows(services: Services, rows: str) -> None:
    """The mapping the story starts with, published through the service."""
    services.mappings.publish({Path("orders.yaml"): orders_with(rows)}, author="editor")
    assert services.live_mappings.refresh()


def publish_in_console(page: Page, console: Api, rows: str) -> None:
    """The fixed mapping published with the page's session, as the mapping editor does;
    then taken up as the broker's reload listener takes up a published version."""
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    answer = page.request.post(
        f"{console.url}/api/mappings/publish",
        headers={"X-CSRF-Token": csrf},
        data={"files": {"orders.yaml": orders_with(rows)}, "comment": "CT has a station"},
    )
    assert answer.status == 201, answer.text()
    assert console.services.live_mappings.refresh()


def accept_dialogs(page: Page) -> list[str]:
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return asked


def test_a_refused_order_is_found_reprocessed_once_mapped_and_another_dismissed(
    page_as: Callable[[str], Page], console: Api, screenshot: Shot
) -> None:
    services = console.services
    publish_station_rows(services, "MR: MR_3T")
    assert send(services, two_step_order()) == "AA"  # message 1: its stations named in IPC-9
    assert send_refused(services) == "AE"  # message 2: no PID-3
    assert send(services, order(1)) == "AE"  # message 3: CT has no station row
    page = page_as("editor")
    asked = accept_dialogs(page)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Messages").click()
    rows = page.locator("#rows tr")
    expect(rows).to_have_count(3)  # every message, newest first
    page.get_by_label("Errors only").check()
    page.get_by_role("button", name="Show messages").click()
    expect(page).to_have_url(re.compile(r"/messages\?errors_only=true$"))
    expect(rows).to_have_count(2)
    expect(page.get_by_role("status")).to_have_text("2 messages shown.")
    screenshot(page)

    page.get_by_role("link", name="Message 3", exact=True).click()
    expect(page).to_have_url(re.compile(r"\?errors_only=true&id=3$"))
    detail = page.get_by_role("region", name="Message 3")
    expect(detail.get_by_role("heading", name="Message 3")).to_be_focused()
    error = detail.get_by_role("table", name="Error, answered AE")
    expect(error).to_contain_text("ScheduledStationAETitle")
    expect(page.locator("#raw")).to_contain_text("OBR|1|PLC-9")
    expect(page.locator("#ack")).to_contain_text("MSA|AE|")
    expect(detail.get_by_role("link", name=re.compile("Download the bytes"))).to_have_attribute(
        "href", "/api/messages/3/raw"
    )
    screenshot(page)

    publish_in_console(page, console, "MR: MR_3T, CT: CT_SCANNER_1")
    page.get_by_role("button", name="Reprocess message 3").click()
    status = page.get_by_role("status")
    expect(status).to_have_text(
        "Message 3 reprocessed as message 4: AA (accepted). It left the error list."
    )
    new = page.get_by_role("region", name="Message 4")
    expect(new.get_by_role("link", name=re.compile(r"^Entry "))).to_have_count(1)
    expect(new.get_by_role("list")).to_contain_text("(SCHEDULED)")
    expect(new.get_by_role("link", name="message 3")).to_be_visible()
    expect(rows).to_have_count(1)  # errors only: message 2 is left
    screenshot(page)

    page.get_by_role("link", name="Message 2", exact=True).click()
    page.get_by_role("button", name="Dismiss message 2").click()
    expect(status).to_have_text("Message 2 dismissed: it left the error list.")
    expect(rows).to_have_text(["No message matches these filters."])
    expect(page.get_by_role("region", name="Message 2")).to_contain_text("dismissed (")
    assert asked == [
        "Reprocess message 3 through the active mapping?",
        "Dismiss message 2? It leaves the error list without being reprocessed.",
    ]
    screenshot(page)


def test_a_viewer_opens_a_message_from_its_link_pages_back_and_has_no_actions(
    page_as: Callable[[str], Page], console: Api, screenshot: Shot
) -> None:
    send_orders(console.services, 11)
    assert send_refused(console.services) == "AE"  # message 12
    page = page_as("viewer")
    page.locator("#e-rows").get_by_role("link", name="12").click()  # the dashboard's recent error
    detail = page.get_by_role("region", name="Message 12")
    expect(detail.get_by_role("table", name="Error, answered AE")).to_contain_text("PID-3")
    expect(page.get_by_role("button", name=re.compile("Reprocess|Dismiss"))).to_have_count(0)
    screenshot(page)
    page.get_by_label("Per page").select_option("10")
    page.get_by_role("button", name="Show messages").click()
    expect(page).to_have_url(re.compile(r"/messages\?limit=10&id=12$"))
    rows = page.locator("#rows tr")
    expect(rows).to_have_count(10)
    page.get_by_role("button", name="Older messages").click()
    expect(rows).to_have_count(12)
    expect(page.get_by_role("status")).to_have_text("2 older messages shown.")
    expect(page.get_by_role("link", name="Message 2", exact=True)).to_be_focused()
    expect(page.get_by_role("button", name="Older messages")).to_be_hidden()
    page.get_by_label("Received from (your time)").fill("2026-12-05T10:00:00")
    page.get_by_label("Received until (your time)").fill("2026-12-05T09:00:00")
    page.get_by_role("button", name="Show messages").click()
    expect(page.get_by_role("alert")).to_have_text("since: is after until")
    screenshot(page)


def test_an_action_the_log_refuses_is_answered_with_its_reason(
    page_as: Callable[[str], Page], console: Api, screenshot: Shot
) -> None:
    big = order(1).replace(b"PID|", b"ZZZ|" + b"x" * 70_000 + b"\rPID|", 1)
    console.services.intake.reject(big, "frame too large", "10.0.0.9:4000")  # message 1
    page = page_as("editor")
    accept_dialogs(page)
    page.goto("/messages?id=1")
    detail = page.get_by_role("region", name="Message 1")
    expect(detail).to_contain_text("the log kept its first")
    page.get_by_role("button", name="Reprocess message 1").click()
    expect(page.get_by_role("alert")).to_contain_text("send it again")
    expect(page.get_by_role("status")).to_have_text("")
    screenshot(page)
