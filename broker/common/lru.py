"""A bounded least-recently-used map shared by association threads; readers never wait.

Writers (insert and evict, remove) take a lock, so the bound holds after each of
them. ``put`` does not wait for it: when another writer holds it, ``put`` holds
nothing and says so, and the caller uses its value uncached (``discard``, rare,
waits). Readers take no lock: a read is one ``OrderedDict.get`` and one
``move_to_end``, each a single operation that the GIL makes atomic, since the
keys are strings, ints and tuples of them (no Python-level ``__hash__`` or
``__eq__`` runs inside). A reader that races an eviction only loses its recency
touch.

Why: a thread that loses the GIL while it holds a lock stalls every thread that
then waits for that lock. With a lock around every read and write, 8
concurrent station polls over 100k entries had a p50 about 30 % higher than
with no lock at all (bench/RESULTS.md, 2026-12-01).
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["LRU"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """Up to ``max_items`` values by key, the least recently read or written dropped first."""

    def __init__(self, max_items: int) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self._max = max_items
        self._lock = threading.Lock()  # writers only
        self._items: OrderedDict[K, V] = OrderedDict()

    def __repr__(self) -> str:
        return f"LRU(max_items={self._max}, held={len(self)})"

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        """The value held for ``key`` (now the most recently used), or None."""
        value = self._items.get(key)
        if value is not None:
            with contextlib.suppress(KeyError):  # evicted meanwhile by a writer
                self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> bool:
        """Hold ``value`` for ``key``, dropping the least recently used past the bound.

        False, and nothing held, if another thread is writing at this moment.
        """
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)
        finally:
            self._lock.release()
        return True

    def discard(self, key: K) -> None:
        """Forget ``key``, if held."""
        with self._lock:
            self._items.pop(key, None)
