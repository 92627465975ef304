"""New and deleted mapping files on the mappings page, in chromium: an editor adds a site
file (the name checked as it is typed), pastes its mapping, previews a message of its type,
publishes and finds it in the history; deletes it (after a confirmation), publishes, and
rolls back to bring it back. A viewer sees neither button."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.integration.admin_helpers import Api
from tests.integration.mapping_site import CARDIO_ORDER, SITE_FILE, SITE_NAME

Shot = Callable[[Page], Path]


def add_site_file(page: Page, screenshot: Shot) -> None:
    files = page.get_by_role("navigation", name="Mapping files")
    opener = files.get_by_role("button", name="New file…")
    opener.click()
    dialog = page.get_by_role("dialog", name="New mapping file")
    name = dialog.get_by_label("File name")
    expect(name).to_be_focused()
    name.press_sequentially("../x")
    expect(dialog.locator("#new-file-error")).to_have_text("The name must end in .yaml.")
    name.fill("orders.yaml")
    expect(dialog.locator("#new-file-error")).to_contain_text("already a file of the set")
    expect(name).to_have_attribute("aria-invalid", "true")
    name.fill("")
    name.press_sequentially(SITE_NAME)
    expect(dialog.locator("#new-file-error")).to_have_text("")
    screenshot(page)
    name.press("Enter")
    expect(dialog).to_be_hidden()
    item = files.get_by_role("button", name=re.compile(rf"^{re.escape(SITE_NAME)} \(new"))
    expect(item).to_have_attribute("aria-current", "true")
    expect(page.locator("#pending")).to_have_text(f"Not published yet: new {SITE_NAME}.")
    editor = page.get_by_label(f"{SITE_NAME} (new file)")
    expect(editor).to_be_focused()
    editor.fill(SITE_FILE)
    expect(page.locator("#check-status")).to_have_text("The edited files validate.")


def test_an_editor_adds_a_site_file_publishes_deletes_and_rolls_back(
    page_as: Callable[[str], Page], console: Api, screenshot: Shot
) -> None:
    page = page_as("editor")
    page.get_by_role("link", name="Mappings").click()
    expect(page.get_by_role("heading", name="Mappings", level=1)).to_be_visible()
    # the page's script has bound its buttons and loaded the set: the heading alone is the
    # server's HTML, where a click on "New file…" before the script runs does nothing
    expect(page.locator("#loaded-version")).to_contain_text("version 1")
    add_site_file(page, screenshot)

    page.get_by_label(re.compile("^HL7 message")).fill(CARDIO_ORDER)
    page.get_by_role("button", name="Preview with the edited files").click()
    expect(page.locator("#preview-status")).to_have_text(
        f"Preview with v1 with new {SITE_NAME}: 1 message, 0 refused."
    )
    trace = page.get_by_role("table", name="Entry 1: where each attribute came from")
    expect(trace.get_by_role("row", name=re.compile(r"Modality "))).to_contain_text("OBR-24")
    page.get_by_role("button", name="Show the changes").click()
    expect(page.locator("#diff-out")).to_contain_text(f"+++ edited/{SITE_NAME}")
    page.get_by_label("Comment (why this change)").fill("cardiology orders")
    page.get_by_role("button", name="Publish the edited files").click()
    expect(page.locator("#publish-status")).to_have_text("Published version 2.")
    row = page.get_by_role("row", name=re.compile(r"^v2 \(active\)"))
    expect(row).to_contain_text(SITE_NAME)
    expect(page.locator("#pending")).to_have_text("")
    screenshot(page)

    files = page.get_by_role("navigation", name="Mapping files")
    files.get_by_role("button", name=re.compile(rf"^{re.escape(SITE_NAME)}")).click()
    opener = files.get_by_role("button", name="Delete file…")
    opener.click()
    confirm = page.get_by_role("dialog", name=f"Delete {SITE_NAME}?")
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")  # changed my mind: nothing deleted, focus back
    expect(opener).to_be_focused()
    opener.click()
    confirm.get_by_role("button", name="Delete the file").click()
    expect(files.get_by_role("button", name=f"Undo delete of {SITE_NAME}")).to_be_visible()
    expect(page.locator("#pending")).to_have_text(f"Not published yet: deleted {SITE_NAME}.")
    screenshot(page)
    page.get_by_role("button", name="Publish the edited files").click()
    expect(page.locator("#publish-status")).to_have_text("Published version 3.")
    expect(page.get_by_role("row", name=re.compile(r"^v3 \(active\)"))).not_to_contain_text(
        SITE_NAME
    )
    expect(files.get_by_role("listitem")).to_have_count(3)
    assert SITE_NAME not in console.services.mappings.active().files

    rollback = page.get_by_role("form", name="Roll back")
    rollback.get_by_label("Publish again the files of version").select_option("2")
    rollback.get_by_role("button", name="Roll back").click()
    expect(page.locator("#history-status")).to_have_text(
        "Version 2's files are published again as version 4."
    )
    expect(
        files.get_by_role("button", name=re.compile(rf"^{re.escape(SITE_NAME)}$"))
    ).to_be_visible()
    assert console.services.mappings.active().files[SITE_NAME] == SITE_FILE


def test_a_viewer_sees_neither_new_nor_delete(page_as: Callable[[str], Page]) -> None:
    page = page_as("viewer")
    page.get_by_role("link", name="Mappings").click()
    files = page.get_by_role("navigation", name="Mapping files")
    expect(files.get_by_role("button", name="orders.yaml")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("New file|Delete file"))).to_have_count(0)
    expect(page.locator("dialog")).to_have_count(0)
