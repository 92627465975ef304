"""Messages from all connections handed to one worker thread, together.

Each MLLP connection has at most one message in flight (``broker.mllp.server``),
so the messages waiting here come from different connections and have no
order among themselves. One worker thread takes everything that is waiting
(up to ``max_batch``) and starts it as one group of operations
(``HL7Router.handle_steps``): each message exactly as alone, but their Redis
round trips shared, so that under load N messages cost one round trip (and one
fsync) per step instead of N. When the broker is idle a message is taken at
once: batching adds no wait.

The worker does not wait for Redis while there is other work: a group's step
is sent (``broker.store.steps.StepPipeline``) and the next messages are
decoded and mapped while Redis executes and persists it; the replies are read
when there is nothing new to start (a message that arrives while the worker
waits for replies wakes it at once). A message's ACK goes back only once Redis
replied to its last step.

One thread instead of a pool also keeps the GIL between two threads (this one
and the event loop), rather than handing it around a pool of workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import select
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import redis

from broker.store.steps import StepPipeline, Steps

__all__ = ["BatchingHandler"]

log = logging.getLogger(__name__)

Start = Callable[[bytes, str], Steps[bytes]]
Answer = Callable[[bytes, str, object], bytes]
_Item = tuple[bytes, str, "asyncio.Future[bytes]", asyncio.AbstractEventLoop]


class BatchingHandler:
    """An MLLP ``Handler`` whose messages one worker thread processes in groups.

    ``start(raw, peer)`` gives a message's operation (its steps); ``answer(raw,
    peer, result)`` turns what the operation returned or raised into the ACK.
    """

    def __init__(
        self, start: Start, answer: Answer, client: redis.Redis, *, max_batch: int = 64
    ) -> None:
        self._start = start
        self._answer = answer
        self._max_batch = max_batch
        self._pipeline = StepPipeline(client)
        self._waiting: deque[_Item] = deque()
        self._lock = threading.Lock()
        self._sleeping = False  # the worker waits on the wake-up pipe: write to it
        self._closing = False
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._thread = threading.Thread(target=self._run, name="hl7-batch", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return (
            f"BatchingHandler(max_batch={self._max_batch}, waiting={len(self._waiting)}, "
            f"in_flight={len(self._pipeline)})"
        )

    async def __call__(self, raw: bytes, peer: str) -> bytes:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        with self._lock:
            if self._closing:
                raise RuntimeError("the HL7 worker is stopping")
            self._waiting.append((raw, peer, future, loop))
            self._wake()
        return await future

    def close(self) -> None:
        """Finish what is waiting and in flight, then stop the worker thread."""
        with self._lock:
            self._closing = True
            self._wake()
        self._thread.join()
        self._pipeline.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _wake(self) -> None:
        """Wake the worker if it waits (call with the lock held)."""
        if self._sleeping:
            self._sleeping = False
            with contextlib.suppress(BlockingIOError):  # full of wake-ups already
                os.write(self._wake_write, b"\0")

    def _run(self) -> None:
        while True:
            with self._lock:
                batch = self._take()
                if not batch:
                    if self._closing and not len(self._pipeline):
                        return  # nothing left
                    self._sleeping = True
            try:
                if batch:
                    operations = [self._start(raw, peer) for raw, peer, _, _ in batch]
                    self._pipeline.start(operations, functools.partial(self._finished, batch))
                elif not len(self._pipeline):
                    select.select([self._wake_read], [], [])
                elif self._pipeline.reply_ready(self._wake_read):
                    self._pipeline.receive()
            except Exception as e:  # a fault of the worker itself: answer, never hang
                log.exception("HL7 worker fault")
                if batch:
                    _settle(batch, [e] * len(batch))
            if not batch:
                self._drain_wakeups()

    def _drain_wakeups(self) -> None:
        with self._lock:
            self._sleeping = False
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_read, 4096):
                pass

    def _take(self) -> list[_Item]:
        batch: list[_Item] = []
        while self._waiting and len(batch) < self._max_batch:
            item = self._waiting.popleft()
            if not item[2].cancelled():  # its connection went away while it waited
                batch.append(item)
        return batch

    def _finished(self, batch: list[_Item], results: list[Any]) -> None:
        answers: list[bytes | BaseException] = []
        for (raw, peer, _, _), result in zip(batch, results, strict=True):
            try:
                answers.append(self._answer(raw, peer, result))
            except Exception as e:
                log.exception("[%s] no ACK could be built", peer)
                answers.append(e)
        _settle(batch, answers)


def _settle(batch: list[_Item], answers: list[bytes | BaseException]) -> None:
    """Hand the answers to the event loop of each waiting message (from the worker)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bytes], Any]]] = {}
    for (_, _, future, loop), answer in zip(batch, answers, strict=True):
        by_loop.setdefault(loop, []).append((future, answer))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_set_all, settled)


def _set_all(settled: list[tuple[asyncio.Future[bytes], Any]]) -> None:
    for future, answer in settled:
        if future.done():
            continue
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)
