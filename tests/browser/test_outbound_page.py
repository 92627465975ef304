"""The outbound page in chromium, with the broker's real sender and a real MLLP receiver
process: two dead letters made by the receiver answering AE are shown, one's message text
is revealed, one is discarded with a reason, the other retried once the receiver answers
AA (delivered, and gone from the page); a viewer sees neither retry nor discard; the
waiting table follows the events sent even when the counts stay the same."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Page, expect

from broker.mllp.client import connect_destination
from broker.services.outbound_sender import SenderThreads
from tests.integration.admin_helpers import Api, running_api, site_services
from tests.integration.outbound_helpers import Receiver, put_orders, queue, set_status

Shot = Callable[[Page], Path]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    got = Receiver(tmp_path / "got.jsonl")
    got.start(answer="ae")
    try:
        yield got
    finally:
        got.kill()


@pytest.fixture
def console(redis_client: redis.Redis, tmp_path: Path, receiver: Receiver) -> Iterator[Api]:
    """The console with the broker's outbound senders running, and two orders' STARTED
    events sent to the receiver (which answers AE: both parked)."""
    site = (
        '[hl7_senders.RIS]\naddresses = ["127.0.0.1"]\ndestination = "ris"\n'
        f'[hl7_destinations.ris]\nhost = "127.0.0.1"\nport = {receiver.port}\n'
        "ack_timeout = 5\nretry_first = 0.05\nretry_max = 0.2\n"
    )
    services = site_services(redis_client, tmp_path, site)
    senders = SenderThreads(services.outbound_senders(connect_destination))
    senders.start()
    try:
        for entry_id in put_orders(services.store, 2):
            set_status(services.store, entry_id, "STARTED")
        with running_api(services) as running:
            yield running
    finally:
        senders.stop(10)


def open_outbound(page: Page) -> None:
    page.get_by_role("link", name="Outbound").click()
    expect(page.get_by_role("heading", name="Outbound", level=1)).to_be_visible()


def test_dead_letters_shown_revealed_discarded_and_retried(
    page_as: Callable[[str], Page], console: Api, receiver: Receiver, screenshot: Shot
) -> None:
    page = page_as("editor")
    open_outbound(page)
    ris = page.get_by_role("region", name=re.compile(r"^ris "))
    expect(ris.get_by_text("ris: 0 waiting, 2 parked.")).to_be_visible()
    parked = ris.get_by_role("table", name="Parked events (dead letters) of ris")
    expect(parked.get_by_role("row", name=re.compile(r"^1 STARTED"))).to_contain_text("AE: the")
    expect(ris).to_contain_text("AE: the receiver rejected it")  # the last error
    ris.get_by_role("button", name="Show event 1").click()
    dialog = page.get_by_role("dialog", name="Event 1 for ris")
    expect(dialog).to_contain_text("unknown order")  # the receiver's ERR
    expect(dialog.get_by_label("Message text")).to_be_hidden()
    dialog.get_by_role("button", name="Show the message text").click()
    text = dialog.get_by_label("Message text")
    expect(text).to_contain_text(re.compile(r"^ORC\|SC\|PL-0\|", re.M))
    screenshot(page)
    page.keyboard.press("Escape")
    expect(ris.get_by_role("button", name="Show event 1")).to_be_focused()

    ris.get_by_role("button", name="Discard event 2").click()
    confirm = page.get_by_role("dialog", name="Discard event 2 of ris")
    confirm.get_by_role("button", name="Discard event").click()
    expect(confirm.get_by_role("alert")).to_have_text("Say why the event is discarded.")
    confirm.get_by_label("Reason (kept on the audit trail)").fill("closed in the RIS by hand")
    screenshot(page)
    confirm.get_by_role("button", name="Discard event").click()
    expect(page.get_by_role("status")).to_have_text(re.compile(r"^Event 2 discarded\. No other"))
    expect(ris.get_by_text("ris: 0 waiting, 1 parked.")).to_be_visible()
    heading = ris.get_by_role("heading", name="Parked events (dead letters) of ris")
    expect(heading).to_be_focused()  # its row is gone: the focus is not lost

    receiver.kill()
    receiver.start(answer="aa")  # the receiver fixed: it accepts now
    ris.get_by_role("button", name="Retry event 1").click()
    expect(page.get_by_role("status")).to_have_text("Queued again for ris: event 1.")
    expect(ris.get_by_text("ris: 0 waiting, 0 parked.")).to_be_visible()
    expect(ris.get_by_text("None: everything was acknowledged.")).to_be_visible()
    assert [(r["order"], r["status"]) for r in receiver.records()][-1] == ("PL-0", "IP")
    assert queue(console.services.store).parked() == []
    screenshot(page)


def test_a_viewer_sees_the_dead_letters_without_retry_or_discard(
    page_as: Callable[[str], Page], screenshot: Shot
) -> None:
    page = page_as("viewer")
    open_outbound(page)
    ris = page.get_by_role("region", name=re.compile(r"^ris "))
    expect(ris.get_by_role("button", name="Show event 2")).to_be_visible()
    expect(ris.get_by_role("button", name=re.compile("^(Retry|Discard)"))).to_have_count(0)
    screenshot(page)


def test_the_waiting_table_follows_the_ids_when_the_counts_stay(
    page_as: Callable[[str], Page], console: Api
) -> None:
    page = page_as("viewer")
    open_outbound(page)
    ris = page.get_by_role("region", name=re.compile(r"^ris "))
    expect(ris.get_by_text("ris: 0 waiting, 2 parked.")).to_be_visible()
    store = console.services.store
    store.client.set(store.keys.outbound("ris", "lease"), "elsewhere:1:t", px=60_000)
    third, fourth = put_orders(store, 2, first=2)  # orders not held: their events wait
    set_status(store, third, "STARTED")
    waiting = ris.get_by_role("table", name="Waiting to be sent to ris")
    expect(waiting.get_by_role("row", name=re.compile(r"^3 STARTED"))).to_be_visible()
    set_status(store, fourth, "STARTED")  # then 3 is sent by "elsewhere": 1 waiting again
    assert queue(store).done("elsewhere:1:t", "3")
    expect(waiting.get_by_role("row", name=re.compile(r"^4 STARTED"))).to_be_visible()
    expect(waiting.get_by_role("row", name=re.compile(r"^3 "))).to_have_count(0)
    expect(ris.get_by_text("ris: 1 waiting, 2 parked.")).to_be_visible()
