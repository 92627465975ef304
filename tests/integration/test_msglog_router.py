"""The router records every message in the message log on a real redis-server: accepted,
refused, duplicate, undecodable, out of order; and answers when the log fails."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from broker.errors import StoreError
from broker.mapping.registry import MappingRegistry
from broker.mllp.client import split_messages, summarize_ack
from broker.services.routing import HL7Router, RouterConfig
from broker.store.message_records import Intake, MessageQuery, MessageRecorder, Outcome
from broker.store.msglog import MessageLog
from broker.store.steps import Steps
from broker.store.worklist import WorklistStore
from broker.worklist.model import CandidateCriteria, LogRecord
from tests.broker_runner import DATA, MAPPINGS
from tests.conftest import KEYS


def _router(redis_client: redis.Redis, recorder: MessageRecorder | None) -> HL7Router:
    registry = MappingRegistry.load(MAPPINGS)
    return HL7Router(
        WorklistStore(redis_client, keys=KEYS), lambda: registry, RouterConfig(), recorder=recorder
    )


def _message(path: Path) -> bytes:
    return split_messages(path.read_bytes())[0]


def test_router_records_accepted_error_duplicate_and_undecodable(redis_client: redis.Redis) -> None:
    mlog = MessageLog(redis_client)
    router = _router(redis_client, mlog)
    nw = _message(DATA / "orm_o01_nw_latin1.hl7")
    assert summarize_ack(router.handle(nw, "10.0.0.1:1")).code == "AA"
    assert (
        summarize_ack(router.handle(_message(DATA / "orm_o01_missing_pid3.hl7"), "p")).code == "AE"
    )
    assert summarize_ack(router.handle(nw, "10.0.0.1:2")).code == "AA"
    router.handle(b"MSH|^~\\&|RIS|RAD|||||ORM^O01\rPID|x\r", "p")  # no MSH-10: AR
    rows = mlog.find(MessageQuery()).items
    assert [r.outcome for r in rows] == [
        Outcome.ERROR, Outcome.DUPLICATE, Outcome.ERROR, Outcome.ACCEPTED,
    ]  # fmt: skip
    undecodable, duplicate, missing_pid, accepted = rows
    assert (undecodable.ack_code, undecodable.message_type) == ("AR", "ORM^O01")
    assert duplicate.control_id == "ORM-1001" and duplicate.created == 0
    assert missing_pid.error is not None and missing_pid.error.location == "PID-3"
    assert missing_pid.on_error_list and undecodable.on_error_list
    record = mlog.get(accepted.id)
    assert record is not None and record.raw == nw
    assert (accepted.sending_application, accepted.sending_facility) == ("RIS", "RADIOLOGY")
    assert record.mapping_name == "orders" and record.mapping_version
    assert record.charset == "iso8859-1" or record.charset.startswith("iso8859")
    store = WorklistStore(redis_client, keys=KEYS)
    (order_key,) = record.order_keys
    assert list(record.entry_ids) == store.order_entry_ids(order_key)
    assert accepted.created == 1
    assert record.ack == redis_client.hget(KEYS.message(duplicate.id), "ack")


class _Broken:
    """A message log whose Redis is away: every call fails as the store does."""

    def record_steps(self, intake: Intake) -> Steps[str]:
        raise StoreError("message log unavailable: connection refused")

    def applied_record(self, intake: Intake) -> LogRecord:
        raise StoreError("message log unavailable: connection refused")

    def written(self, message_id: str) -> None:
        raise StoreError("message log unavailable: connection refused")


def test_router_still_answers_when_the_log_fails(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    router = _router(redis_client, _Broken())
    ack = router.handle(_message(DATA / "orm_o01_nw_latin1.hl7"), "10.0.0.1:1")
    assert summarize_ack(ack).code == "AA"
    assert WorklistStore(redis_client, keys=KEYS).count() == 1
    assert "not recorded in the message log" in caplog.text
    assert "PAT-1001" not in caplog.text and "Müller" not in caplog.text


def test_transport_rejects_are_recorded_but_not_listed_as_errors(redis_client: redis.Redis) -> None:
    mlog = MessageLog(redis_client)
    router = _router(redis_client, mlog)
    prefix = b"MSH|^~\\&|RIS|RAD|MWL|HOSP|20260101||ORM^O01|BIG1|P|2.5.1\rPID|||"
    assert summarize_ack(router.reject(prefix, "frame too large", "10.1.1.1:4000")).code == "AR"
    (row,) = mlog.find(MessageQuery()).items
    assert (row.outcome, row.control_id, row.peer) == (Outcome.REJECTED, "BIG1", "10.1.1.1:4000")
    assert row.error is not None and row.error.text == "frame too large"
    assert not row.on_error_list and mlog.count(errors_only=True) == 0


def _variant(raw: bytes, msh7: bytes, control_id: bytes, *, orc1: bytes, accession: bytes) -> bytes:
    out = raw.replace(
        b"|20261125083000||ORM^O01|ORM-1001|", b"|" + msh7 + b"||ORM^O01|" + control_id + b"|"
    )
    return out.replace(b"ORC|NW|", b"ORC|" + orc1 + b"|").replace(
        b"|ACC-1001|", b"|" + accession + b"|"
    )


def test_router_skips_an_order_change_older_than_the_last_applied(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="broker.services.routing")
    mlog = MessageLog(redis_client)
    router = _router(redis_client, mlog)
    nw = _message(DATA / "orm_o01_nw_latin1.hl7")
    newer = _variant(nw, b"20261125090000", b"X2", orc1=b"XO", accession=b"ACC-2002")
    older = _variant(nw, b"20261125084500", b"X3", orc1=b"XO", accession=b"ACC-3003")
    for raw in (nw, newer):
        assert summarize_ack(router.handle(raw, "p")).code == "AA"
    ack = summarize_ack(router.handle(older, "p"))
    assert ack.code == "AA"  # the sender did nothing wrong
    (entry,) = WorklistStore(redis_client, keys=KEYS).candidates(CandidateCriteria())
    assert entry.AccessionNumber == "ACC-2002"
    latest = mlog.find(MessageQuery()).items[0]
    assert (latest.control_id, latest.outcome, latest.created) == ("X3", Outcome.OUT_OF_ORDER, 0)
    assert not latest.on_error_list
    by_outcome = {
        o: [r.control_id for r in mlog.find(MessageQuery(outcome=o)).items] for o in Outcome
    }
    assert by_outcome[Outcome.OUT_OF_ORDER] == ["X3"]
    assert by_outcome[Outcome.ACCEPTED] == ["X2", "ORM-1001"]
    assert "1 order change(s) older (MSH-7)" in caplog.text


@pytest.mark.parametrize(
    ("second_orc1", "accession", "err_code", "location"),
    [
        (b"NW", b"A" * 17, "104", "OBR-18"),  # a bad second group
        (b"CH", b"ACC-1002", "103", "ORC-1"),  # a child order group
    ],
)
def test_a_two_group_order_is_applied_whole_or_not_at_all(
    redis_client: redis.Redis, second_orc1: bytes, accession: bytes, err_code: str, location: str
) -> None:
    mlog = MessageLog(redis_client)
    router = _router(redis_client, mlog)
    nw = _message(DATA / "orm_o01_nw_latin1.hl7").rstrip(b"\r")
    group = nw[nw.index(b"ORC|") :].replace(b"1001", b"1002").split(b"\r")
    group = [s for s in group if s.startswith((b"ORC", b"OBR"))]
    second = b"\r".join(group).replace(b"ORC|NW|", b"ORC|" + second_orc1 + b"|")
    second = second.replace(b"|ACC-1002|", b"|" + accession + b"|")
    ack = router.handle(nw + b"\r" + second + b"\r", "p")
    assert summarize_ack(ack).code == "AE"
    (row,) = mlog.find(MessageQuery()).items
    assert row.error is not None and (row.error.err_code, row.error.location) == (
        err_code,
        location,
    )
    assert row.on_error_list
    assert WorklistStore(redis_client, keys=KEYS).count() == 0
    assert redis_client.hlen(KEYS.order_time()) == 0
    assert redis_client.hlen(KEYS.order_status()) == 0


def test_resend_gets_its_ack_even_when_the_mapping_now_refuses_it(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    mlog = MessageLog(redis_client)
    nw = _message(DATA / "orm_o01_nw_latin1.hl7")
    first = _router(redis_client, mlog).handle(nw, "p")
    assert summarize_ack(first).code == "AA"
    stricter = tmp_path / "mappings"
    stricter.mkdir()
    for path in MAPPINGS.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        text = text.replace("{path: PID-3, required: true}", "{path: PID-30, required: true}")
        (stricter / path.name).write_text(text, encoding="utf-8")
    registry = MappingRegistry.load(stricter)
    router = HL7Router(
        WorklistStore(redis_client, keys=KEYS), lambda: registry, RouterConfig(), recorder=mlog
    )
    assert router.handle(nw, "p") == first  # mapped before the dedup read: still the stored ACK
    other = nw.replace(b"ORM-1001", b"ORM-1002")
    assert summarize_ack(router.handle(other, "p")).code == "AE"  # the stricter mapping applies
    rows = mlog.find(MessageQuery()).items
    assert [r.outcome for r in rows] == [Outcome.ERROR, Outcome.DUPLICATE, Outcome.ACCEPTED]
    duplicate = mlog.get(rows[1].id)
    assert rows[1].created == 0 and duplicate is not None and not duplicate.order_keys
