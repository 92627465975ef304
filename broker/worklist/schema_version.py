"""The key schema a Redis holds, checked wherever a worklist store is opened.

``{p}:keyschema`` (``broker.worklist.keys``) records the schema version and the
fingerprint of the site secret that made its pseudonyms:

- **version 2**: the fingerprint must be this secret's. Another secret would
  compute other names for every key and find nothing (orders would be applied
  twice, C-FIND would answer empty), so the broker refuses to start instead,
  with an error naming ``redis_key_secret``.
- **no record** (a new Redis): the fingerprint and version 2 are recorded. A
  Redis with worklist keys but no record was written by an earlier release:
  refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from broker.errors import ConfigError, StoreError, store_error
from broker.worklist.keys import SCHEMA_VERSION, KeySchema

__all__ = ["SchemaStatus", "ensure_key_schema", "schema_status"]


@dataclass(frozen=True)
class SchemaStatus:
    """What ``{p}:keyschema`` says: the version ("1" without a record) and whether the
    fingerprint is this secret's ("same"), another's ("other") or not there ("none")."""

    version: str
    fingerprint: str


def schema_status(client: redis.Redis, keys: KeySchema) -> SchemaStatus:
    try:
        version, fingerprint = client.hmget(keys.key_schema(), ["version", "fingerprint"])
    except redis.RedisError as e:
        raise store_error(e) from e
    found = "none" if fingerprint is None else "other"
    if fingerprint is not None and _text(fingerprint) == keys.fingerprint():
        found = "same"
    return SchemaStatus("1" if version is None else _text(version), found)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _refuse_other_secret(status: SchemaStatus, keys: KeySchema) -> None:
    if status.fingerprint == "other":
        raise ConfigError(
            "redis_key_secret",
            f"the keys under prefix {keys.prefix!r} in this Redis were made with another "
            "secret; start with the secret they were made with (a changed secret would find "
            "none of the stored entries, patients or MPPS instances)",
        )


def ensure_key_schema(client: redis.Redis, keys: KeySchema) -> None:
    """Check the fingerprint; record it and the version in a Redis without a record."""
    status = schema_status(client, keys)
    _refuse_other_secret(status, keys)
    if status.version == SCHEMA_VERSION:
        return
    if status.version != "1":
        raise StoreError(
            f"this Redis holds key schema {status.version}, newer than this broker's "
            f"({SCHEMA_VERSION}): upgrade the broker"
        )
    try:
        if client.exists(keys.all_entries(), keys.order_status(), keys.patient_time()):
            raise StoreError(
                "this Redis holds worklist keys of an earlier release (identifiers in key "
                "names); this release cannot use them"
            )
        written = client.hsetnx(keys.key_schema(), "fingerprint", keys.fingerprint())
        if not written:  # another broker recorded one meanwhile
            _refuse_other_secret(schema_status(client, keys), keys)
        client.hset(keys.key_schema(), "version", SCHEMA_VERSION)
    except redis.RedisError as e:
        raise store_error(e) from e
