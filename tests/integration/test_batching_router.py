"""Messages from different connections handled by the router as one group: shared round
trips, each message's own outcome and ACK."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import redis
from pydicom.dataset import Dataset

from broker.mapping.registry import MappingRegistry
from broker.mllp.client import split_messages, summarize_ack
from broker.services.routing import HL7Router, RouterConfig
from broker.store import scripts, steps
from broker.store.message_records import MessageQuery, Outcome
from broker.store.msglog import MessageLog
from broker.store.worklist import WorklistStore
from broker.worklist.model import OrderAction, OrderChange
from tests.broker_runner import DATA, MAPPINGS
from tests.conftest import KEYS
from tests.integration.batching_helpers import CountingRedis, unreachable


def order(control_id: str) -> bytes:
    raw = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
    return raw.replace(b"ORM-1001", control_id.encode())


def handled_together(
    router: HL7Router, client: redis.Redis, messages: Sequence[tuple[bytes, str]]
) -> list[bytes]:
    """Messages from different connections processed as one group, in lockstep."""
    results = steps.run_all(client, [router.handle_steps(raw, peer) for raw, peer in messages])
    return [router.answer(raw, peer, r) for (raw, peer), r in zip(messages, results, strict=True)]


def test_messages_handled_together_each_get_their_own_answer(counting: redis.Redis) -> None:
    registry = MappingRegistry.load(MAPPINGS)
    mlog = MessageLog(counting)
    store = WorklistStore(counting, keys=KEYS)
    router = HL7Router(store, lambda: registry, RouterConfig(), recorder=mlog)
    first = order("B-1")
    missing_pid3 = split_messages((DATA / "orm_o01_missing_pid3.hl7").read_bytes())[0]
    other_content = first.replace(b"V-5001", b"V-5002")  # same control ID, other content
    batch = [(first, "p1"), (missing_pid3, "p2"), (first, "p3"), (other_content, "p4")]
    assert summarize_ack(router.handle(order("WARM-UP"), "p0")).code == "AA"  # scripts loaded
    # an applied order's record is written by its apply
    counting.script_load(scripts.load("msglog_record").source)
    CountingRedis.pipelines = 0
    acks = handled_together(router, counting, batch)
    codes = [summarize_ack(a).code for a in acks]
    assert codes == ["AA", "AE", "AA", "AE"]
    assert acks[2] == acks[0]  # the resend got the very same ACK
    assert summarize_ack(acks[3]).errors == ("MSH-10 205 Duplicate key identifier",)
    # the reads, the atomic updates (with B-1's record) and the other log writes of all four:
    # one round trip each
    assert CountingRedis.pipelines == 3
    assert store.count() == 1  # WARM-UP and B-1 are the same order: one entry
    outcomes = [row.outcome for row in mlog.find(MessageQuery()).items]
    assert sorted(outcomes) == sorted(
        [Outcome.ACCEPTED, Outcome.ACCEPTED, Outcome.ERROR, Outcome.DUPLICATE, Outcome.ERROR]
    )


def test_an_applied_order_is_recorded_by_the_call_that_applies_it(counting: redis.Redis) -> None:
    registry = MappingRegistry.load(MAPPINGS)
    mlog = MessageLog(counting)
    store = WorklistStore(counting, keys=KEYS)
    router = HL7Router(store, lambda: registry, RouterConfig(), recorder=mlog)
    assert summarize_ack(router.handle(order("WARM-UP"), "p0")).code == "AA"  # scripts loaded
    CountingRedis.pipelines = 0
    ack = router.handle(order("R-1"), "p1")
    assert CountingRedis.pipelines == 2  # the reads, then the changes with their record
    (row, _) = mlog.find(MessageQuery()).items
    record = mlog.get(row.id)
    assert record is not None and record.ack == ack and record.raw == order("R-1")
    assert (row.control_id, row.outcome, row.ack_code, row.created, row.removed) == (
        "R-1", Outcome.ACCEPTED, "AA", 1, 1,  # R-1 replaces WARM-UP's entry: the same order
    )  # fmt: skip
    assert list(record.entry_ids) == store.order_entry_ids(record.order_keys[0])
    accepted = mlog.find(MessageQuery(outcome=Outcome.ACCEPTED)).items
    assert [r.control_id for r in accepted] == ["R-1", "WARM-UP"]
    assert counting.ttl(KEYS.message(row.id)) > 0


def adt(control_id: str, patient_id: str) -> bytes:
    """An ADT^A08 (update patient information) for ``patient_id``."""
    return "\r".join(
        [
            f"MSH|^~\\&|HIS|HOSP|MWL|RAD|20261125083000||ADT^A08^ADT_A01|{control_id}|P|2.5.1",
            "EVN|A08|20261125083000",
            f"PID|1||{patient_id}^^^HOSP^MR||Berg^Ake||19770707|M",
            "PV1|1|I|WARD^1^1",
        ]
    ).encode()


def test_adt_messages_handled_together_share_each_round_trip(counting: redis.Redis) -> None:
    registry = MappingRegistry.load(MAPPINGS)
    store = WorklistStore(counting, keys=KEYS)
    router = HL7Router(store, lambda: registry, RouterConfig(), recorder=MessageLog(counting))
    store.apply([schedule_for("PAT-B0")], None)  # a patient with an entry on the worklist
    for _ in range(2):  # applied, then a resend: every script the batch runs is loaded
        assert summarize_ack(router.handle(adt("WARM-UP", "PAT-B0"), "p0")).code == "AA"
    CountingRedis.pipelines = CountingRedis.direct = 0
    alone = router.handle(adt("ALONE", "PAT-B0"), "p1")
    assert summarize_ack(alone).code == "AA"
    rounds_alone = CountingRedis.pipelines
    CountingRedis.pipelines = 0
    batch = [(adt(f"B-{n}", f"PAT-B{n}"), f"p{n}") for n in range(4)]
    acks = handled_together(router, counting, [*batch, (adt("ALONE", "PAT-B0"), "p9")])
    assert [summarize_ack(a).code for a in acks] == ["AA"] * 5
    assert acks[-1] == alone  # the resend got the very same ACK
    # five messages cost the round trips of one: every read, update and log record shared
    assert CountingRedis.pipelines == rounds_alone
    assert CountingRedis.direct == 0  # and nothing outside them
    assert all(counting.exists(KEYS.patient(f"PAT-B{n}")) for n in range(4))


def schedule_for(patient_id: str) -> OrderChange:
    ds = Dataset()
    ds.PatientID = patient_id
    ds.AccessionNumber = f"ACC-{patient_id}"
    sps = Dataset()
    sps.ScheduledStationAETitle = "CT1"
    sps.ScheduledProcedureStepID = "S1"
    ds.ScheduledProcedureStepSequence = [sps]
    return OrderChange(f"O-{patient_id}", OrderAction.SCHEDULE, (ds,))


def test_a_resend_the_mapping_now_refuses_is_looked_up_in_a_shared_round_trip(
    counting: redis.Redis, tmp_path: Path
) -> None:
    store = WorklistStore(counting, keys=KEYS)
    registry = MappingRegistry.load(MAPPINGS)
    first = HL7Router(store, lambda: registry, RouterConfig()).handle(order("R-1"), "p0")
    assert summarize_ack(first).code == "AA"
    stricter = tmp_path / "mappings"
    stricter.mkdir()
    for path in MAPPINGS.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        text = text.replace("{path: PID-3, required: true}", "{path: PID-30, required: true}")
        (stricter / path.name).write_text(text, encoding="utf-8")
    refusing = MappingRegistry.load(stricter)
    router = HL7Router(store, lambda: refusing, RouterConfig())
    CountingRedis.pipelines = CountingRedis.direct = 0
    acks = handled_together(router, counting, [(order("R-1"), "p1"), (order("R-2"), "p2")])
    assert acks[0] == first  # a resend: its stored ACK, whatever the mapping makes of it now
    assert summarize_ack(acks[1]).code == "AE"  # new: the stricter mapping refuses it
    assert (CountingRedis.pipelines, CountingRedis.direct) == (1, 0)  # both lookups, together


def test_messages_handled_together_are_answered_ar_when_redis_is_gone(tmp_path: Path) -> None:
    registry = MappingRegistry.load(MAPPINGS)
    gone = unreachable(tmp_path)
    router = HL7Router(WorklistStore(gone, keys=KEYS), lambda: registry, RouterConfig())
    acks = handled_together(router, gone, [(order("G-1"), "p1"), (order("G-2"), "p2")])
    assert [summarize_ack(a).code for a in acks] == ["AR", "AR"]
