"""The mappings page in chromium: an editor breaks a mapping and sees the error on its line,
fixes it, previews README's example order with the trace, publishes with a comment and
finds the version in the history; a stale publish offers to reload; a viewer reads only."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from broker.mllp.client import split_messages
from tests.broker_runner import DATA, MAPPINGS
from tests.integration.admin_helpers import Api
from tests.integration.hl7_seed import send

Shot = Callable[[Page], Path]
README_ORDER = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
MISSING_PID = split_messages((DATA / "orm_o01_missing_pid3.hl7").read_bytes())[0]
ORDERS = (MAPPINGS / "orders.yaml").read_text(encoding="utf-8")
KEYWORD = "PatientBirthDate:"
KEYWORD_LINE = ORDERS[: ORDERS.index(KEYWORD)].count("\n") + 1
SITE_NOTE = "\n# Site: the CT head protocols were checked.\n"


def mappings_page(page: Page) -> Locator:
    """The mappings page, orders.yaml in the editor; the editor's textarea."""
    page.get_by_role("link", name="Mappings").click()
    expect(page.get_by_role("heading", name="Mappings", level=1)).to_be_visible()
    files = page.get_by_role("navigation", name="Mapping files")
    files.get_by_role("button", name=re.compile(r"^orders\.yaml")).click()
    editor = page.locator("#editor-text")
    expect(editor).to_have_value(ORDERS)
    return editor


def break_and_fix(page: Page, editor: Locator, screenshot: Shot) -> None:
    editor.fill(ORDERS.replace(KEYWORD, "PatientBirthDat:"))
    errors = page.get_by_role("list", name="Errors in the edited files")
    item = errors.get_by_role("button", name=re.compile(rf"^orders\.yaml, line {KEYWORD_LINE}\b"))
    expect(item).to_contain_text("PatientBirthDat")
    expect(page.locator("#gutter .bad")).to_have_text(str(KEYWORD_LINE))
    expect(page.get_by_text(re.compile(r"^1 error\. orders\.yaml"))).to_be_visible()
    item.click()
    expect(editor).to_be_focused()
    screenshot(page)
    caret = editor.evaluate("node => node.value.slice(0, node.selectionStart)")
    assert caret.count("\n") == KEYWORD_LINE - 1
    editor.fill(ORDERS + SITE_NOTE)
    expect(page.locator("#check-status")).to_have_text("The edited files validate.")
    expect(page.locator("#gutter .bad")).to_have_count(0)
    editor.press("Control+End")
    editor.press("Tab")  # indents
    expect(editor).to_have_value(ORDERS + SITE_NOTE + "  ")
    editor.press("Escape")
    editor.press("Tab")  # leaves
    expect(editor).not_to_be_focused()


def test_an_editor_fixes_a_mapping_previews_the_readme_order_and_publishes(
    page_as: Callable[[str], Page], console: Api, screenshot: Shot
) -> None:
    assert send(console.services, README_ORDER) == "AA"
    page = page_as("editor")
    editor = mappings_page(page)
    break_and_fix(page, editor, screenshot)

    page.get_by_role("button", name="Pick from the message log").click()
    page.get_by_role("button", name="Use message ORM-1001").click()
    expect(page.get_by_label(re.compile("^HL7 message"))).to_have_value(re.compile(r"^MSH\|"))
    page.get_by_role("button", name="Preview with the edited files").click()
    expect(page.locator("#preview-status")).to_have_text(
        re.compile(r"^Preview with v1 with orders\.yaml: 1 message, 0 refused\.$")
    )
    trace = page.get_by_role("table", name="Entry 1: where each attribute came from")
    name = trace.get_by_role("row", name=re.compile(r"^PatientName "))
    expect(name).to_contain_text("PID-5")
    expect(name).to_contain_text("Müller^Jürgen")
    screenshot(page)

    page.get_by_role("button", name="Show the changes").click()
    expect(page.locator("#diff-out .add")).to_contain_text(["+# Site: the CT head protocols"])
    page.get_by_label("Comment (why this change)").fill("CT head protocols checked")
    page.get_by_role("button", name="Publish the edited files").click()
    expect(page.locator("#publish-status")).to_have_text("Published version 2.")
    row = page.get_by_role("row", name=re.compile(r"^v2 \(active\)"))
    expect(row).to_contain_text("editor")
    expect(row).to_contain_text("CT head protocols checked")
    expect(page.locator("#loaded-version")).to_have_text("(version 2, by editor)")
    page.get_by_role("form", name="Compare two versions").get_by_role("button").click()
    expect(page.get_by_role("heading", name="From v1 to v2")).to_be_focused()
    expect(page.locator("#history-out .add")).to_contain_text(["+# Site: the CT head protocols"])
    screenshot(page)


def test_a_stale_publish_offers_to_reload(
    page_as: Callable[[str], Page], console: Api, screenshot: Shot
) -> None:
    page = page_as("editor")
    editor = mappings_page(page)
    editor.fill(ORDERS + SITE_NOTE)
    expect(page.locator("#check-status")).to_have_text("The edited files validate.")
    meanwhile = {Path("orders.yaml"): ORDERS + "\n# Published elsewhere.\n"}
    console.services.mappings.publish(meanwhile, author="admin", comment="meanwhile", expect=1)
    page.get_by_role("button", name="Publish the edited files").click()
    expect(page.locator("#publish-status")).to_contain_text("Not published")
    reload = page.get_by_role("button", name="Reload the active version")
    expect(reload).to_be_focused()
    screenshot(page)
    reload.click()
    expect(editor).to_have_value(meanwhile[Path("orders.yaml")])
    expect(page.locator("#loaded-version")).to_have_text("(version 2, by admin)")
    rollback = page.get_by_role("form", name="Roll back")
    expect(rollback.get_by_label("Publish again the files of version")).to_have_value("1")
    rollback.get_by_label("Comment").fill("back to the shipped set")
    rollback.get_by_role("button", name="Roll back").click()
    expect(page.locator("#history-status")).to_have_text(
        "Version 1's files are published again as version 3."
    )
    expect(page.get_by_role("row", name=re.compile(r"^v3 \(active\)"))).to_contain_text(
        "back to the shipped set"
    )
    expect(editor).to_have_value(ORDERS)


def test_a_viewer_reads_the_mappings_but_cannot_publish(
    page_as: Callable[[str], Page], screenshot: Shot
) -> None:
    page = page_as("viewer")
    editor = mappings_page(page)
    expect(editor).to_have_attribute("readonly", "")
    expect(page.get_by_role("button", name=re.compile("Publish|Roll back"))).to_have_count(0)
    page.get_by_role("button", name="View version 1").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Version 1, by"))).to_be_visible()
    page.get_by_label(re.compile("^HL7 message")).fill(MISSING_PID.decode("latin-1"))
    page.get_by_role("button", name="Preview", exact=True).click()
    expect(page.locator("#preview-status")).to_contain_text("1 message, 1 refused.")
    expect(page.locator(".refusal")).to_have_text(
        re.compile(r"^Refused: AE, ERR code \d+ at PID-3: ")
    )
    screenshot(page)
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    answer = page.request.post(
        "/api/mappings/publish",
        data={"files": {"orders.yaml": ORDERS + SITE_NOTE}, "comment": "no", "expect": 1},
        headers={"X-CSRF-Token": csrf},
    )
    assert answer.status == 403
