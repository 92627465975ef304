"""A broker killed right after a message's changes were stored, before anything else ran:
the message is in the message log as applied (written by the same atomic call as its
changes), and the sender's resend is answered as a duplicate. Found by the crash-safety
soak (``tests.crash``): an ADT message applied just before a SIGKILL had no record."""

from __future__ import annotations

import pytest
import redis

from broker.mapping.registry import MappingRegistry
from broker.mllp.client import split_messages, summarize_ack
from broker.services.routing import HL7Router, RouterConfig
from broker.store import steps
from broker.store.message_records import MessageQuery, Outcome
from broker.store.msglog import MessageLog
from broker.store.steps import Steps
from broker.store.worklist import WorklistStore
from broker.worklist.model import DedupKey
from tests.broker_runner import DATA, MAPPINGS
from tests.conftest import KEYS

_ADT = (
    b"MSH|^~\\&|RIS|RADIOLOGY|MWL_BROKER|HOSPITAL|20261125083000||ADT^A08^ADT_A01|ADT-7|P|2.5.1\r"
    b"EVN|A08|20261125083000\r"
    b"PID|||PAT-1001^^^HOSP||Doe^Jane||19700101|F\r"
    b"PV1||O\r"
)
_ORM = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]


def _until_stored(client: redis.Redis, operation: Steps[bytes], key: str) -> Steps[None]:
    """Run ``operation`` step by step and stop for good once ``key`` (the message's dedup
    record: its changes are stored) exists, as a SIGKILL at that moment would."""
    step = next(operation)
    while True:
        replies = yield step
        if client.exists(key):
            operation.close()
            return
        step = operation.send(replies)


@pytest.mark.parametrize(("message", "control"), [(_ADT, "ADT-7"), (_ORM, "ORM-1001")])
def test_a_message_stored_just_before_a_crash_is_in_the_log_and_its_resend_a_duplicate(
    redis_client: redis.Redis, message: bytes, control: str
) -> None:
    registry = MappingRegistry.load(MAPPINGS)
    mlog = MessageLog(redis_client)
    store = WorklistStore(redis_client, keys=KEYS)
    router = HL7Router(store, lambda: registry, RouterConfig(), recorder=mlog)
    key = KEYS.dedup(DedupKey("RIS", "RADIOLOGY", control))
    steps.run(redis_client, _until_stored(redis_client, router.handle_steps(message, "p:1"), key))

    assert [r.outcome for r in mlog.find(MessageQuery()).items] == [Outcome.ACCEPTED]
    assert summarize_ack(router.handle(message, "p:2")).code == "AA"  # the resend
    outcomes = [r.outcome for r in mlog.find(MessageQuery()).items]
    assert outcomes == [Outcome.DUPLICATE, Outcome.ACCEPTED]
