"""The message log on a real redis-server: recording, filters, paging, retention, error list,
bounds on what it keeps. The router's records: ``test_msglog_router.py``."""

from __future__ import annotations

import time
from dataclasses import replace

import redis

from broker.common.clock import ManualClock
from broker.store.message_records import ErrorInfo, Intake, MessageQuery, Outcome, WarningInfo
from broker.store.msglog import MessageLog, ack_code_of
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


def test_a_failed_reprocess_does_not_list_the_message_twice(redis_client: redis.Redis) -> None:
    mlog = MessageLog(redis_client)
    original = mlog.record(intake("E1", outcome=Outcome.ERROR))
    retry = mlog.record(replace(intake("E1", outcome=Outcome.ERROR), reprocess_of=original))
    assert [r.id for r in mlog.find(MessageQuery(errors_only=True)).items] == [original]
    record = mlog.get(retry)
    assert record is not None and record.summary.peer == f"reprocess of message {original}"
    assert record.summary.resolution == f"failed reprocess of message {original}"
    assert redis_client.ttl(KEYS.message(retry)) > 0


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
