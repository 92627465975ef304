"""The message log on a real redis-server: recording, filters, paging, retention, error list."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from broker.common.clock import ManualClock
from broker.errors import StoreError
from broker.mapping.registry import MappingRegistry
from broker.mllp.client import split_messages, summarize_ack
from broker.services.routing import HL7Router, RouterConfig
from broker.store.message_records import (
    ErrorInfo,
    Intake,
    MessageQuery,
    MessageRecorder,
    Outcome,
    WarningInfo,
)
from broker.store.msglog import MessageLog, ack_code_of
from broker.store.steps import Steps
from broker.store.worklist import WorklistStore
from broker.worklist.model import CandidateCriteria, LogRecord
from tests.broker_runner import DATA, MAPPINGS
from tests.conftest import KEYS

ACK_AA = b"MSH|^~\\&|MWL_BROKER||RIS|RAD|20260101||ACK^O01^ACK|1|P|2.5.1\rMSA|AA|C1\r"
ACK_AE = (
    b"MSH|^~\\&|MWL_BROKER||RIS|RAD|20260101||ACK^O01^ACK|2|P|2.5.1\rMSA|AE|C2|PID-3 missing\r"
    b"ERR||PID^1^3|101^Required field missing^HL70357|E||||PID-3 missing\r"
)
RAW = b"MSH|^~\\&|RIS|RAD|MWL|HOSP|20260101||ORM^O01|C1|P|2.5.1\rPID|||P1||Doe^Jane\r"


def intake(
    control_id: str = "C1",
    *,
    outcome: Outcome = Outcome.ACCEPTED,
    message_type: str = "ORM^O01",
    app: str = "RIS",
    received_at: float | None = None,
) -> Intake:
    error = None
    ack = ACK_AA
    if outcome.listed_as_error:
        error = ErrorInfo("AE", "101", "PID-3", "PID-3 missing")
        ack = ACK_AE
    return Intake(
        raw=RAW,
        peer="127.0.0.1:5000",
        received_at=time.time() if received_at is None else received_at,
        ack=ack,
        outcome=outcome,
        sending_application=app,
        sending_facility="RAD",
        message_type=message_type,
        control_id=control_id,
        version="2.5.1",
        charset="utf-8",
        error=error,
        mapping_name="orders",
        mapping_version="1",
        order_keys=("PLACER:1^RIS",),
        entry_ids=("e1", "e2"),
        created=2,
    )


def test_record_and_read_back_everything(redis_client: redis.Redis) -> None:
    mlog = MessageLog(redis_client)
    message_id = mlog.record(intake())
    record = mlog.get(message_id)
    assert record is not None
    s = record.summary
    assert (s.id, s.outcome, s.ack_code, s.message_type, s.control_id) == (
        message_id, Outcome.ACCEPTED, "AA", "ORM^O01", "C1",
    )  # fmt: skip
    assert (s.sending_application, s.sending_facility, s.peer) == ("RIS", "RAD", "127.0.0.1:5000")
    assert record.raw == RAW and record.ack == ACK_AA
    assert record.mapping_name == "orders" and record.entry_ids == ("e1", "e2")
    assert record.order_keys == ("PLACER:1^RIS",) and s.created == 2
    assert not s.on_error_list and s.error is None
    ttl = redis_client.ttl(KEYS.message(message_id))
    assert 29 * 86400 < ttl <= 30 * 86400
    assert mlog.get("999999") is None


def test_ack_code_is_read_from_the_ack_sent() -> None:
    assert ack_code_of(ACK_AE, None) == "AE"
    assert ack_code_of(b"garbage", ErrorInfo("AR", "207", "", "x")) == "AR"


def test_filters_and_paging_newest_first(redis_client: redis.Redis) -> None:
    mlog = MessageLog(redis_client)
    ids = [mlog.record(intake(f"C{n}", app="RIS" if n % 2 else "HIS")) for n in range(10)]
    adt = mlog.record(intake("A1", message_type="ADT^A08"))
    bad = mlog.record(intake("C3", outcome=Outcome.ERROR))
    page = mlog.find(MessageQuery(limit=5))
    assert [r.id for r in page.items] == [bad, adt, *reversed(ids[-3:])]
    assert page.next_before == int(ids[-3])
    rest = mlog.find(MessageQuery(limit=50, before_id=page.next_before))
    assert [r.id for r in rest.items] == list(reversed(ids[:7])) and rest.next_before is None
    assert [r.id for r in mlog.find(MessageQuery(message_type="ADT^A08")).items] == [adt]
    assert [r.id for r in mlog.find(MessageQuery(control_id="C3")).items] == [bad, ids[3]]
    assert [r.id for r in mlog.find(MessageQuery(control_id="C")).items] == []
    his = mlog.find(MessageQuery(sending_application="HIS", message_type="ORM^O01"))
    assert [r.id for r in his.items] == [ids[n] for n in (8, 6, 4, 2, 0)]
    errors = mlog.find(MessageQuery(errors_only=True))
    assert [(r.id, r.on_error_list) for r in errors.items] == [(bad, True)]
    assert [r.id for r in mlog.find(MessageQuery(outcome=Outcome.ERROR)).items] == [bad]


def test_warnings_are_kept_counted_listed_and_trimmed(redis_client: redis.Redis) -> None:
    mlog = MessageLog(redis_client, max_messages=2)
    warning = WarningInfo("104", "PV1-8", "PV1-8 (ReferringPhysicianName) had 68 characters")
    warned = mlog.record(replace(intake("W1"), warnings=(warning, warning)))
    plain = mlog.record(intake("P1"))
    assert mlog.count(warnings_only=True) == 1
    (row,) = mlog.find(MessageQuery(warnings_only=True)).items
    assert (row.id, row.warnings) == (warned, 2)
    record = mlog.get(warned)
    assert record is not None and record.warnings == (warning, warning)
    plain_record = mlog.get(plain)
    assert plain_record is not None and plain_record.warnings == ()
    assert plain_record.summary.warnings == 0
    mlog.record(intake("P2"))  # over max_messages: the warned message goes, and its index entry
    assert mlog.count(warnings_only=True) == 0
    assert mlog.find(MessageQuery(warnings_only=True)).items == ()


def test_time_filters(redis_client: redis.Redis) -> None:
    mlog = MessageLog(redis_client)
    now = time.time()
    old = mlog.record(intake("OLD", received_at=now - 3600))
    new = mlog.record(intake("NEW", received_at=now))
    assert [r.id for r in mlog.find(MessageQuery(since=now - 60)).items] == [new]
    assert [r.id for r in mlog.find(MessageQuery(until=now - 1800)).items] == [old]


def test_count_retention_trims_oldest_and_their_indexes(redis_client: redis.Redis) -> None:
    mlog = MessageLog(redis_client, max_messages=3)
    ids = [mlog.record(intake(f"C{n}")) for n in range(5)]
    assert mlog.count() == 3
    assert mlog.get(ids[0]) is None and mlog.get(ids[1]) is None
    assert [r.id for r in mlog.find(MessageQuery(limit=10)).items] == list(reversed(ids[2:]))
    k = KEYS
    assert redis_client.zcard(k.messages_by_type("ORM^O01")) == 3
    assert redis_client.zcard(k.messages_by_control_id()) == 3
    assert redis_client.hlen(k.message_refs()) == 3


def test_age_retention_trims_on_write(redis_client: redis.Redis) -> None:
    clock = ManualClock()
    mlog = MessageLog(redis_client, retention_days=1 / 86400, clock=clock)  # one second
    first = mlog.record(intake("C1", received_at=clock.now()))
    kept_error = mlog.record(intake("C2", outcome=Outcome.ERROR, received_at=clock.now()))
    clock.advance(0.5)
    mlog.record(intake("younger", received_at=clock.now()))
    assert redis_client.zscore(KEYS.message_times(), first) is not None  # not a second old
    clock.advance(1.0)  # the one-second retention passes
    mlog.record(intake("later", received_at=clock.now()))
    assert redis_client.zscore(KEYS.message_times(), first) is None
    assert mlog.get(first) is None
    # an error stays readable on the error list after the log dropped it
    still = mlog.get(kept_error)
    assert still is not None and still.summary.on_error_list
    assert mlog.count(errors_only=True) == 1
    assert mlog.dismiss(kept_error)
    assert mlog.get(kept_error) is None  # out of retention and off the list: gone


def test_error_list_resolve_and_dismiss(redis_client: redis.Redis) -> None:
    mlog = MessageLog(redis_client)
    a = mlog.record(intake("E1", outcome=Outcome.ERROR))
    b = mlog.record(intake("E2", outcome=Outcome.INTERNAL_ERROR))
    mlog.record(intake("S1", outcome=Outcome.STORE_FAILURE))
    assert redis_client.ttl(KEYS.message(a)) == -1  # kept while on the error list
    assert mlog.count(errors_only=True) == 2
    assert mlog.resolve(a, "reprocessed as 7, AA")
    assert not mlog.resolve(a, "again")
    assert mlog.dismiss(b) and not mlog.dismiss(b)
    record = mlog.get(a)
    assert record is not None and not record.summary.on_error_list
    assert record.summary.resolution.startswith("reprocessed as 7, AA")
    assert redis_client.ttl(KEYS.message(a)) > 0
    assert mlog.find(MessageQuery(errors_only=True)).items == ()


def test_error_list_is_capped(redis_client: redis.Redis) -> None:
    mlog = MessageLog(redis_client, max_messages=2)
    ids = [mlog.record(intake(f"E{n}", outcome=Outcome.ERROR)) for n in range(4)]
    assert mlog.count(errors_only=True) == 2
    assert mlog.get(ids[0]) is None
    assert [r.id for r in mlog.find(MessageQuery(errors_only=True)).items] == [ids[3], ids[2]]


# -- the router records every message --------------------------------------------


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


def test_a_failed_reprocess_does_not_list_the_message_twice(redis_client: redis.Redis) -> None:
    mlog = MessageLog(redis_client)
    original = mlog.record(intake("E1", outcome=Outcome.ERROR))
    retry = mlog.record(replace(intake("E1", outcome=Outcome.ERROR), reprocess_of=original))
    assert [r.id for r in mlog.find(MessageQuery(errors_only=True)).items] == [original]
    record = mlog.get(retry)
    assert record is not None and record.summary.peer == f"reprocess of message {original}"
    assert record.summary.resolution == f"failed reprocess of message {original}"
    assert redis_client.ttl(KEYS.message(retry)) > 0


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


# -- bounds on what the log keeps -----------------------------------------------------------


def test_the_byte_budget_drops_the_oldest_messages(redis_client: redis.Redis) -> None:
    big = replace(intake(), raw=RAW + b"NTE|1||" + b"x" * 1000 + b"\r")
    mlog = MessageLog(redis_client, max_bytes=5 * len(big.raw))
    ids = [mlog.record(replace(big, control_id=f"C{n}")) for n in range(8)]
    kept = [r.id for r in mlog.find(MessageQuery()).items]
    assert kept == list(reversed(ids[3:]))  # five fit; the three oldest went
    assert mlog.get(ids[0]) is None and mlog.get(ids[3]) is not None
    assert int(redis_client.get(KEYS.message_bytes()) or 0) == 5 * len(big.raw)


def test_errors_waiting_for_a_person_outlive_the_byte_budget(redis_client: redis.Redis) -> None:
    mlog = MessageLog(redis_client, max_bytes=2 * len(RAW))
    waiting = mlog.record(intake("E1", outcome=Outcome.ERROR))
    for n in range(4):
        mlog.record(intake(f"C{n}"))
    record = mlog.get(waiting)
    assert record is not None and record.raw == RAW  # dropped from the log, not the list
    assert [r.id for r in mlog.find(MessageQuery(errors_only=True)).items] == [waiting]


def test_the_byte_budget_holds_when_every_message_waits_on_the_error_list(
    redis_client: redis.Redis,
) -> None:
    """A flood of refused messages cannot grow Redis past the budget: once the log has
    nothing else to give, the oldest waiting errors go, each marked as dropped."""
    mlog = MessageLog(redis_client, max_bytes=3 * len(RAW))
    ids = [mlog.record(intake(f"E{n}", outcome=Outcome.ERROR)) for n in range(10)]
    waiting = [r.id for r in mlog.find(MessageQuery(errors_only=True)).items]
    assert waiting == list(reversed(ids[7:]))  # the newest three fit
    counted = int(redis_client.get(KEYS.message_bytes()) or 0)
    stored = sum(
        redis_client.hstrlen(key, "raw")
        for key in redis_client.scan_iter(match=KEYS.message_prefix() + "*")
    )
    assert counted == stored == 3 * len(RAW)
    mlog.resolve(ids[9], "dismissed")  # leaving the list gives its bytes back with it
    mlog.record(intake("C1"))
    assert mlog.get(ids[8]) is not None and mlog.count(errors_only=True) == 2


def test_a_message_refused_before_mapping_keeps_only_its_start(redis_client: redis.Redis) -> None:
    mlog = MessageLog(redis_client, refused_prefix=64)
    junk = b"MSH|^~\\&|X|Y|||||ORM^O01|J1|P|2.5\r" + b"\xff" * 100_000
    undecodable = replace(intake("J1"), raw=junk, charset="", outcome=Outcome.ERROR)
    kept = mlog.get(mlog.record(replace(undecodable, error=ErrorInfo("AR", "102", "MSH-18", "x"))))
    assert kept is not None and kept.raw == junk[:64] and kept.raw_size == len(junk)
    refused = replace(intake("R1"), raw=RAW * 10, ack=ACK_AE.replace(b"MSA|AE", b"MSA|AR"))
    header = mlog.get(mlog.record(refused))
    assert header is not None and header.raw == (RAW * 10)[:64]
    mapped = mlog.get(mlog.record(intake("E2", outcome=Outcome.ERROR)))  # AE: reprocessable
    assert mapped is not None and mapped.raw == RAW and mapped.raw_size == len(RAW)
