"""The bounded LRU map the C-FIND caches share: order, bound, and many threads at once."""

from __future__ import annotations

import random
import threading

import pytest

from broker.common.lru import LRU


def test_the_least_recently_used_goes_first() -> None:
    lru: LRU[str, int] = LRU(3)
    for n, key in enumerate("abc"):
        lru.put(key, n)
    assert lru.get("a") == 0  # now the most recent
    lru.put("d", 3)
    assert lru.get("b") is None
    assert [lru.get(k) for k in "acd"] == [0, 2, 3]
    assert len(lru) == 3


def test_put_replaces_and_discard_forgets() -> None:
    lru: LRU[str, int] = LRU(2)
    lru.put("a", 1)
    lru.put("a", 2)
    assert (lru.get("a"), len(lru)) == (2, 1)
    lru.discard("a")
    lru.discard("never there")
    assert (lru.get("a"), len(lru)) == (None, 0)


def test_a_put_while_another_writer_holds_the_lock_holds_nothing() -> None:
    lru: LRU[str, int] = LRU(2)
    assert lru.put("a", 1) is True
    with lru._lock:  # as if another writer were in the middle of its put
        assert lru.put("b", 2) is False
        assert lru.get("a") == 1  # readers do not wait for writers
    assert (lru.get("b"), len(lru)) == (None, 1)
    assert lru.put("b", 2) is True


def test_a_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        LRU(0)


def test_many_threads_reading_writing_and_removing() -> None:
    """Readers take no lock: races with evictions must neither raise nor break the bound."""
    lru: LRU[tuple[int, str], int] = LRU(50)
    errors: list[BaseException] = []
    oversize: list[int] = []
    start = threading.Barrier(8)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        try:
            for _ in range(20_000):
                key = (rng.randrange(120), "k")
                action = rng.random()
                if action < 0.6:
                    value = lru.get(key)
                    assert value is None or value == key[0]
                elif action < 0.95:
                    lru.put(key, key[0])
                else:
                    lru.discard(key)
                if len(lru) > 51:  # a put holds at most one past the bound, briefly
                    oversize.append(len(lru))
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert oversize == []
    assert len(lru) <= 50
