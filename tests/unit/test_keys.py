"""The key schema's pseudonyms (``broker.worklist.keys``): no identifier in a name, nothing
without the secret."""

from __future__ import annotations

import re

import pytest

from broker.worklist.keys import KeySchema, schema1_entry_id
from broker.worklist.model import DedupKey

SECRET = b"a site secret of at least 32 bytes!"
KEYS = KeySchema("mwl", SECRET)
PSEUDONYM = re.compile(r"^[a-z2-7]{26}$")


def test_identifier_keys_hold_a_pseudonym_not_the_value() -> None:
    value = "PAT:1001|x\\y"
    names = [
        KEYS.by_patient(value), KEYS.by_accession(value), KEYS.patient(value),
        KEYS.patient_alias(value), KEYS.order(value),
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
    assert re.match(r"^[0-9a-f]{32}$", old)
    new = KEYS.entry_id("PLACER:1", 1)
    assert PSEUDONYM.match(new)
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
