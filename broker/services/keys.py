"""The Redis key schema, checked or migrated on demand (``mwl-broker migrate-keys``).

The broker migrates a Redis written before pseudonyms by itself when it starts
(``broker.store.schema_version``); this does the same on demand, or only says what
a migration would change: the schema found, whether the key secret is the one the
keys were made with, and counts by kind. Never a key name, an identifier or the
secret.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import redis

from broker.settings import Settings
from broker.store.key_secret import key_schema
from broker.store.schema_version import SchemaStatus, check_key_schema
from broker.store.worklist import WorklistStore

__all__ = ["KeySchemaService"]


class KeySchemaService:
    """Check, then (if asked) migrate, the key schema of one Redis."""

    def __init__(
        self, settings: Settings, client: redis.Redis, store: Callable[[], WorklistStore]
    ) -> None:
        self._settings = settings
        self._client = client
        self._store = store  # building the store migrates, as a starting broker does

    def __repr__(self) -> str:
        return "KeySchemaService()"

    def check(self) -> tuple[SchemaStatus, Counter[str]]:
        """The schema and key secret found, and what a migration would convert, by kind."""
        return check_key_schema(self._client, key_schema(self._settings))

    def migrate(self) -> None:
        """Convert the keys to the current schema (a no-op when they are)."""
        self._store()
