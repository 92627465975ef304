"""The key schema a Redis holds, checked wherever a worklist store is opened.

``{p}:keyschema`` (``broker.store.keys``) records the schema version and the
fingerprint of the site secret that made its pseudonyms:

- **version 2**: the fingerprint must be this secret's. Another secret would
  compute other names for every key and find nothing (orders would be applied
  twice, C-FIND would answer empty), so the broker refuses to start instead,
  with an error naming ``redis_key_secret``.
- **no record** (a Redis written before pseudonyms, or a new one): under
  ``{p}:keyschema:lock`` (``SET NX PX``, renewed while it runs) the fingerprint
  is written first, then schema 1's keys are migrated
  (``broker.store.key_migration``), then version 2 is recorded. A second
  broker starting meanwhile waits for the lock and then finds version 2; if the
  migrating broker dies, its lock expires and the next one finishes the
  migration (every step can be run again).

Brokers of the previous release must be stopped before the first broker of this
one starts on their Redis: they would go on writing schema-1 keys.

This version is the version of everything the broker stores, not only of key
names: a release that changes what it stores raises it and adds the step that
converts the data here, at start-up. ``tests/integration/test_upgrade.py`` starts
this broker on a Redis the previous release wrote (``tests/schema2_data.py``).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from types import TracebackType

import redis

from broker.errors import ConfigError, StoreError, store_error
from broker.store import scripts
from broker.store.key_migration import KeyMigration, Tick
from broker.store.keys import SCHEMA_VERSION, KeySchema
from broker.store.schema1 import Kind
from broker.store.scripts import ScriptRunner

__all__ = ["LOCK_MS", "SchemaStatus", "check_key_schema", "ensure_key_schema", "schema_status"]

log = logging.getLogger(__name__)

LOCK_MS = 30_000  # life of the migration lock; renewed every third of it while migrating
_POLL_SECONDS = 0.2  # how often a broker waiting for another's migration looks again
_RENEW = scripts.load("lock_renew")
_RELEASE = scripts.load("lock_release")


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


def ensure_key_schema(
    client: redis.Redis,
    keys: KeySchema,
    *,
    alias_ttl: int,
    lock_ms: int = LOCK_MS,
    tick: Tick | None = None,
) -> Counter[str] | None:
    """Check the fingerprint, and migrate schema-1 keys if the Redis has not been migrated.
    Returns what the migration changed, or None when there was nothing to do."""
    status = schema_status(client, keys)
    _refuse_other_secret(status, keys)
    if status.version == SCHEMA_VERSION:
        return None
    if status.version != "1":
        raise StoreError(
            f"this Redis holds key schema {status.version}, newer than this broker's "
            f"({SCHEMA_VERSION}): upgrade the broker"
        )
    with _Lock(client, keys, lock_ms) as lock:
        status = schema_status(client, keys)  # another broker may have finished meanwhile
        _refuse_other_secret(status, keys)
        if status.version == SCHEMA_VERSION:
            return None
        try:
            if status.fingerprint == "none":
                client.hset(keys.key_schema(), "fingerprint", keys.fingerprint())

            def renew(kind: Kind | str) -> None:
                lock.renew()
                if tick is not None:
                    tick(kind)

            counts = KeyMigration(client, keys, alias_ttl=alias_ttl, tick=renew).run()
            client.hset(keys.key_schema(), "version", SCHEMA_VERSION)
        except redis.RedisError as e:
            raise store_error(e) from e
    if counts:
        done = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
        log.info("Redis keys migrated to schema %s (no identifier in a key name): %s",
                 SCHEMA_VERSION, done)  # fmt: skip
    return counts


def check_key_schema(client: redis.Redis, keys: KeySchema) -> tuple[SchemaStatus, Counter[str]]:
    """The schema found, and what a migration would change (nothing is written)."""
    status = schema_status(client, keys)
    if status.version == SCHEMA_VERSION:
        return status, Counter()
    counts = KeyMigration(client, keys, alias_ttl=1, dry=True).run()
    return status, counts


class _Lock:
    """``{p}:keyschema:lock``: one migrating broker at a time (see the module docstring)."""

    def __init__(self, client: redis.Redis, keys: KeySchema, lock_ms: int) -> None:
        self._redis = client
        self._key = keys.key_schema_lock()
        self._ms = lock_ms
        self._token = secrets.token_hex(16)
        self._renewed = 0.0
        self._scripts = ScriptRunner(client)

    def __enter__(self) -> _Lock:
        waiting = False
        try:
            while not self._redis.set(self._key, self._token, nx=True, px=self._ms):
                if not waiting:
                    log.info("waiting for another broker to finish migrating the Redis keys")
                    waiting = True
                time.sleep(_POLL_SECONDS)
        except redis.RedisError as e:
            raise store_error(e) from e
        self._renewed = time.monotonic()
        return self

    def renew(self) -> None:
        """Keep the lock; raise if it was lost (this process stalled past its life)."""
        if time.monotonic() - self._renewed < self._ms / 3000:
            return
        if not self._scripts.run(_RENEW, [self._key], [self._token, self._ms]):
            raise StoreError("key migration: the lock expired and another broker took it over")
        self._renewed = time.monotonic()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            self._scripts.run(_RELEASE, [self._key], [self._token])
        except StoreError as e:
            log.warning("key migration lock not released (it expires in %d s): %s",
                        self._ms // 1000, e)  # fmt: skip
