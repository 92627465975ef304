"""The worklist and scanners API modules' shared set-up: a site with scanner profiles, its
Services on the test's redis-server, and orders sent through the HL7 intake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import redis

from broker.services.application import Services
from tests.integration.admin_helpers import Api, Recorded, caller
from tests.integration.admin_helpers import site_services as site_services_for

SCANNERS = """
[scanners.CT1]
addresses = ["127.0.0.1"]
scope = "own"
date_window = "any"

[scanners.ALL]
addresses = ["127.0.0.1"]
scope = "all"
date_window = "any"
"""
SEARCH = "/api/worklist/search"
ENTRIES = "/api/worklist/entries"


def site_services(client: redis.Redis, tmp_path: Path, audit: Recorded) -> Services:
    return site_services_for(
        client, tmp_path, SCANNERS, audit=audit, dicom_allow_unknown_callers="false"
    )


def orm(
    n: int,
    *,
    control: str = "NW",
    status: str = "SC",
    sent: str = "20261125083000",
    name: str = "Doe^John",
    description: str = "Head protocol",
) -> bytes:
    """An ORM^O01 of order ``n`` (accession ACC-n, CT, 2026-11-26 09:30)."""
    plc = f"PLC-{n}^RIS"
    segments = [
        f"MSH|^~\\&|RIS|RADIOLOGY|MWL_BROKER|HOSPITAL|{sent}||ORM^O01|ORM-{n}-{control}-{sent}"
        "|P|2.3.1||||||UNICODE UTF-8",
        f"PID|||PAT-{n}^^^HOSP||{name}||19650412|M",
        "PV1||O|RAD^ROOM1^1",
        f"ORC|{control}|{plc}|FIL-{n}^RIS||{status}||1^once^^20261126093000^^R||{sent}",
        f"OBR|1|{plc}|FIL-{n}^RIS|CTHEAD^CT head^LOCAL^CTHEAD-P1^{description}^LOCAL"
        f"||||||||||||1234^Schmidt^Anna^^^Dr.||ACC-{n}|RP-{n}|SPS-{n}||||CT|||"
        "1^once^^20261126093000^^R",
    ]
    return ("\r".join(segments) + "\r").encode()


def send(services: Services, raw: bytes) -> None:
    ack = services.intake.handle(raw, "127.0.0.1:2575")
    assert b"MSA|AA" in ack, ack


def console(api: Api, who: str = "viewer") -> httpx.Client:
    """A client for ``who`` (admin_helpers.CALLERS) that sends its CSRF token with each call."""
    client, headers = caller(api, who)
    client.headers.update(headers)
    return client


def entry_ids(client: httpx.Client, criteria: dict[str, str] | None = None) -> dict[str, str]:
    """accession -> entry id of the entries a console search finds."""
    answer = client.post(SEARCH, json={"criteria": criteria or {}})
    assert answer.status_code == 200, answer.text
    return {e["accession"]: e["entry_id"] for e in answer.json()["entries"]}


def read(client: httpx.Client, entry_id: str) -> dict[str, Any]:
    answer = client.get(f"{ENTRIES}/{entry_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body
