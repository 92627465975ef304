"""The key schema's pseudonyms (``broker.store.keys``) and schema 1's names read back
(``broker.store.schema1``): no identifier in a name, nothing without the secret."""

from __future__ import annotations

import re

import pytest

from broker.store.keys import KeySchema, schema1_entry_id
from broker.store.schema1 import Kind, Schema1, is_schema1_id, unescape
from broker.worklist.model import DedupKey

SECRET = b"a site secret of at least 32 bytes!"
KEYS = KeySchema("mwl", SECRET)
PSEUDONYM = re.compile(r"^[0-9a-f]{30}$")


def test_identifier_keys_hold_a_pseudonym_not_the_value() -> None:
    value = "PAT:1001|x\\y"
    names = [
        KEYS.by_patient(value), KEYS.by_accession(value), KEYS.patient(value),
        KEYS.patient_alias(value), KEYS.merged_into(value), KEYS.order(value),
        KEYS.mpps_by_study(value), KEYS.mpps_by_accession(value),
    ]  # fmt: skip
    for name in names:
        kind, _, pseudonym = name.partition("=")
        assert "PAT" not in name and "1001" not in name
        assert PSEUDONYM.match(pseudonym), name
        assert kind.startswith("mwl:") and ":" not in pseudonym
    for field in (KEYS.order_field(value), KEYS.patient_field(value)):
        assert PSEUDONYM.match(field)


def test_a_pseudonym_is_stable_per_kind_and_secret() -> None:
    again = KeySchema("other", SECRET)
    assert KEYS.pseudonym("pid", "P1") == again.pseudonym("pid", "P1")
    assert KEYS.pseudonym("pid", "P1") != KEYS.pseudonym("acc", "P1")  # kinds kept apart
    assert KEYS.pseudonym("pid", "P1") != KEYS.pseudonym("pid", "P2")
    other = KeySchema("mwl", b"another secret, also 32 bytes long")
    assert KEYS.pseudonym("pid", "P1") != other.pseudonym("pid", "P1")
    assert KEYS.fingerprint() != other.fingerprint()
    assert KEYS.by_patient("P1") == KEYS.by_patient("P1")
    assert KEYS.patient("P1").removeprefix("mwl:patient=") == KEYS.patient_field("P1")


def test_entry_ids_are_keyed_and_never_look_like_schema_1() -> None:
    old = schema1_entry_id("PLACER:1", 1)
    assert is_schema1_id(old)
    new = KEYS.entry_id("PLACER:1", 1)
    assert PSEUDONYM.match(new) and not is_schema1_id(new)
    assert new == KEYS.entry_id_from_schema1(old)
    assert new != KEYS.entry_id("PLACER:1", 2)
    assert new != KeySchema("mwl", b"another secret, also 32 bytes long").entry_id("PLACER:1", 1)


def test_without_the_secret_only_the_value_free_keys_are_built() -> None:
    plain = KeySchema("mwl")
    assert plain.entry("abc") == "mwl:entry:abc" and not plain.keyed
    assert plain.dedup(DedupKey("RIS", "HOSP", "MSG1")) == "mwl:dedup:RIS|HOSP|MSG1"
    with pytest.raises(ValueError, match="redis_key_secret"):
        plain.by_patient("P1")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        KeySchema("mwl", b"short")


def test_the_secret_is_never_in_a_repr() -> None:
    assert SECRET.decode() not in repr(KEYS) and "secret" not in repr(KEYS)


def test_schema_1_names_are_read_back_and_never_meet_schema_2() -> None:
    old = Schema1(KEYS)
    assert unescape("A\\:B\\|C\\\\D") == "A:B|C\\D"
    assert old.classify("mwl:idx:pid:PAT\\:1") == (Kind.PATIENT_INDEX, "PAT:1")
    assert old.classify("mwl:alias:OLD") == (Kind.ALIAS, "OLD")
    assert old.classify("mwl:order:PLACER\\:77") == (Kind.ORDER, "PLACER:77")
    assert old.classify("mwl:mpps-idx:study:1.2.3") == (Kind.MPPS_STUDY, "1.2.3")
    entry = schema1_entry_id("PLACER:77", 1)
    assert old.classify(f"mwl:entry:{entry}") == (Kind.ENTRY, entry)
    assert old.classify("mwl:idx:aet:CT1") == (Kind.OTHER_INDEX, "")
    assert old.classify("mwl:ended") == (Kind.SORTED_INDEX, "")
    assert old.classify("mwl:msg:12") == (Kind.MESSAGE, "")
    schema2 = [
        KEYS.by_patient("PAT:1"), KEYS.patient_alias("OLD"), KEYS.order("PLACER:77"),
        KEYS.entry(KEYS.entry_id("PLACER:77", 1)), KEYS.patient("P"), KEYS.merged_into("P"),
        KEYS.patient_time(), KEYS.order_status(), KEYS.order_time(), KEYS.key_schema(),
        KEYS.mpps_events(), KEYS.message_log(), "mwlx:idx:pid:P",
    ]  # fmt: skip
    assert [n for n in schema2 if old.classify(n) is not None] == []
    assert old.ref("mwl:idx:pid:PAT\\:1") == KEYS.by_patient("PAT:1")
    assert old.ref("mwl:idx:aet:CT1") == "mwl:idx:aet:CT1"
    assert old.refs([["s", "mwl:idx:acc:A1"], ["z", "mwl:idx:date", 20261201]]) == [
        ["s", KEYS.by_accession("A1")],
        ["z", "mwl:idx:date", 20261201],
    ]
    assert old.entry_ids([entry, KEYS.entry_id("X:1", 1)]) == [
        KEYS.entry_id("PLACER:77", 1),
        KEYS.entry_id("X:1", 1),
    ]
