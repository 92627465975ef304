"""Every Lua script against a real redis-server: it compiles, it runs through the one
runner, and WAIT for replicas follows every script that writes, and only those."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from broker.errors import StoreError
from broker.mapping.registry import MappingRegistry
from broker.mllp.client import split_messages, summarize_ack
from broker.services.routing import HL7Router, RouterConfig
from broker.store import scripts
from broker.store.message_records import Intake, Outcome
from broker.store.msglog import MessageLog
from broker.store.scripts import ScriptRunner
from broker.store.worklist import WorklistStore
from broker.worklist.model import CandidateCriteria, OrderAction, OrderChange
from tests.broker_runner import DATA, MAPPINGS
from tests.conftest import KEYS

NAMES = sorted(p.stem for p in (Path(scripts.__file__).parent / "lua").glob("*.lua"))


def test_every_script_compiles_in_redis(redis_client: redis.Redis) -> None:
    for name in NAMES:
        script = scripts.load(name)
        assert redis_client.script_load(script.source) == script.sha, name


def test_a_script_is_loaded_again_after_the_cache_was_flushed(redis_client: redis.Redis) -> None:
    runner = ScriptRunner(redis_client)
    release = scripts.load("lock_release")
    redis_client.set("lock", "me")
    redis_client.script_flush()
    assert runner.run(release, ["lock"], ["me"]) == 0
    assert redis_client.exists("lock") == 0


def test_a_write_waits_for_the_replicas_asked_for(redis_client: redis.Redis) -> None:
    """No replica here: WAIT answers 0 after its timeout, and the caller hears it (the
    write itself is done: WAIT cannot undo it)."""
    store = WorklistStore(redis_client, keys=KEYS, wait_replicas=1, wait_timeout_ms=10)
    with pytest.raises(StoreError, match="only 0 of 1 replicas confirmed the write"):
        store.apply([OrderChange("O1", OrderAction.CANCEL)], None)
    runner = ScriptRunner(redis_client, wait_replicas=1, wait_timeout_ms=10)
    mlog = MessageLog(redis_client, scripts=runner)
    intake = Intake(raw=b"MSH|", peer="p", received_at=0.0, ack=b"", outcome=Outcome.REJECTED)
    with pytest.raises(StoreError, match="replicas"):
        mlog.record(intake)


def test_a_read_only_script_does_not_wait(redis_client: redis.Redis) -> None:
    store = WorklistStore(redis_client, keys=KEYS, wait_replicas=1, wait_timeout_ms=10)
    assert store.candidate_ids(CandidateCriteria(station_aet="CT1")) == []


def test_a_resend_answered_from_its_dedup_record_waits_for_the_replicas_too(
    redis_client: redis.Redis,
) -> None:
    """No replica here: the first attempt is stored but not confirmed (AR); its resend
    finds the dedup record, and is not answered AA on it: a replica must confirm a write
    made after it (``lua/replica_confirm.lua``), else the resend is refused too."""
    registry = MappingRegistry.load(MAPPINGS)
    store = WorklistStore(redis_client, keys=KEYS, wait_replicas=1, wait_timeout_ms=10)
    router = HL7Router(store, lambda: registry, RouterConfig())
    order = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
    assert summarize_ack(router.handle(order, "p")).code == "AR"  # stored, not confirmed
    assert len(list(store.candidates(CandidateCriteria()))) == 1
    assert summarize_ack(router.handle(order, "p")).code == "AR"  # the resend: the same
    confirming = redis_client.get(KEYS.replica_confirm())
    assert confirming == b"1"  # the write the replicas were asked to confirm
    plain = HL7Router(WorklistStore(redis_client, keys=KEYS), lambda: registry, RouterConfig())
    assert summarize_ack(plain.handle(order, "p")).code == "AA"  # no replicas asked for
    assert redis_client.get(KEYS.replica_confirm()) == b"1"  # and no write for them
