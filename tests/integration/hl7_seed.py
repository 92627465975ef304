"""HL7 orders for the console's tests, sent through the services' intake as the MLLP
listener would: distinct orders (control id, order numbers) from one file of tests/data."""

from __future__ import annotations

from broker.mllp.client import split_messages, summarize_ack
from broker.services.application import Services
from tests.broker_runner import DATA

_NW = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
_OMI = split_messages((DATA / "omi_o23_two_ipc_utf8.hl7").read_bytes())[0]
_MISSING_PID = split_messages((DATA / "orm_o01_missing_pid3.hl7").read_bytes())[0]


def order(n: int) -> bytes:
    """The n-th new order: its own control id, order numbers, accession number, patient."""
    return _NW.replace(b"-1001", f"-9{n:05d}".encode()).replace(b".1001^", f".9{n:05d}^".encode())


def two_step_order() -> bytes:
    """An OMI^O23 with two steps, on stations MR1 and MR2."""
    return _OMI


def send(services: Services, message: bytes) -> str:
    """The message through the intake; its ACK code."""
    return summarize_ack(services.intake.handle(message, "10.0.0.9:4000")).code


def send_orders(services: Services, count: int, *, start: int = 0) -> None:
    for n in range(start, start + count):
        assert send(services, order(n)) == "AA"


def send_refused(services: Services) -> str:
    """An order without a Patient ID (refused: AE, PID-3, on the error list)."""
    return send(services, _MISSING_PID)
