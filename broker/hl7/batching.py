"""Messages from all connections handed to one worker thread, together.

Each MLLP connection has at most one message in flight (``broker.hl7.server``),
so the messages waiting here come from different connections and have no
order among themselves. One worker thread takes everything that is waiting
(up to ``max_batch``) and processes it with ``HL7Router.handle_many``: each
message exactly as alone, but their Redis round trips shared, so that under
load N messages cost one round trip (and one fsync) per step instead of N.
When the broker is idle a message is taken at once: batching adds no wait.

One thread instead of a pool also keeps the GIL between two threads (this one
and the event loop), rather than handing it around a pool of workers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import deque
from collections.abc import Callable, Sequence

__all__ = ["BatchingHandler"]

ManyHandler = Callable[[Sequence[tuple[bytes, str]]], list[bytes]]


class BatchingHandler:
    """An MLLP ``Handler`` that runs a batch handler on one worker thread."""

    def __init__(self, handle_many: ManyHandler, *, max_batch: int = 64) -> None:
        self._handle_many = handle_many
        self._max_batch = max_batch
        self._waiting: deque[tuple[bytes, str, asyncio.Future[bytes]]] = deque()
        self._busy = False
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="hl7-batch")

    def __repr__(self) -> str:
        return f"BatchingHandler(max_batch={self._max_batch}, waiting={len(self._waiting)})"

    async def __call__(self, raw: bytes, peer: str) -> bytes:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting.append((raw, peer, future))
        if not self._busy:
            self._next_batch()
        return await future

    def _next_batch(self) -> None:
        batch: list[tuple[bytes, str, asyncio.Future[bytes]]] = []
        while self._waiting and len(batch) < self._max_batch:
            item = self._waiting.popleft()
            if not item[2].cancelled():  # its connection went away while it waited
                batch.append(item)
        if not batch:
            self._busy = False
            return
        self._busy = True
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._pool, self._handle_many, [(r, p) for r, p, _ in batch])
        work.add_done_callback(lambda done: self._finished(batch, done))

    def _finished(
        self,
        batch: list[tuple[bytes, str, asyncio.Future[bytes]]],
        done: asyncio.Future[list[bytes]],
    ) -> None:
        error = done.exception() if not done.cancelled() else asyncio.CancelledError()
        for index, (_, _, future) in enumerate(batch):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(done.result()[index])
        self._next_batch()

    def close(self) -> None:
        """Finish the batch in progress, then stop the worker thread."""
        self._pool.shutdown(wait=True)
