"""Broad searches of the worklist run in a process of their own, at a lower priority.

A console or DICOMweb search that names no index key (an empty search, a patient
name, a birth date) reads and matches every entry: 0.3-0.5 ms of Python each,
holding the interpreter lock, and decoding entries into the cache that the station
polls use. In the broker's own process it slowed the polls' C-FIND p50 3.8x and
the HL7 ACK p99 10x while one admin browsed (bench/RESULTS.md, "Admin console").
So a search over more candidates than the broad-query threshold
(``dicom_broad_query_candidates``) still takes its turn in the broad-query gate
(``broker.dicom.gate``), then runs here: in a child process started on first use
(``spawn``: the broker's threads are not forked), niced, with its own Redis
connection and entry cache, reading the store only. It answers one search at a
time; the gate bounds how many wait.

What the caller sees is what the search in the broker's process would have
answered (``WorklistService.page``, run there with the same plan and "today"); a
refusal comes back as the same error (the work budget's 0xA700, a store outage).
A search that outlives ``timeout`` seconds, or a child that dies, is answered
"busy" (``BroadQueryBusy``: 503 with ``Retry-After``) and the child is replaced on
the next search. If no child can be started at all, the search runs in the
broker's process, as before (logged once).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, Protocol

import redis

from broker.dicom.gate import BroadQueryBusy
from broker.dicom.qido import QidoQuery
from broker.dicom.scanner import ScannerProfile
from broker.dicom.status import Status
from broker.errors import DicomServiceError, StoreError
from broker.store.keys import KeySchema
from broker.store.sentinel import client_like
from broker.store.worklist import WorklistStore

if TYPE_CHECKING:
    from broker.services.worklist import SearchPage

__all__ = ["BroadSearches", "SearchProcessUnavailable", "WorkerSpec"]

log = logging.getLogger(__name__)

NICENESS = 10  # the child's: a poll or an ACK in the broker's process goes first
_START_SECONDS = 60.0  # for the child to import the broker and connect to Redis


class Searcher(Protocol):
    """What the child runs a search with (``WorklistService``)."""

    def page(self, profile: ScannerProfile, query: QidoQuery, today: dt.date) -> SearchPage: ...


class SearchProcessUnavailable(Exception):
    """No search process could be started: the caller searches in its own process."""


@dataclass(frozen=True, repr=False)
class WorkerSpec:
    """What the child builds its read-only worklist service from (picklable: no clients,
    no locks). ``connection``: the broker's Redis connection class and its options (the
    password among them: sent through the pipe, never on a command line); ``service``:
    the service's class (``WorklistService``) and ``options`` its other arguments."""

    connection: tuple[type[redis.Connection], dict[str, Any]]
    key_prefix: str
    key_secret: bytes
    entry_cache: int
    service: Callable[..., Searcher]
    options: dict[str, Any] = field(default_factory=dict)
    sentinel: dict[str, Any] | None = None  # the sentinels of a Sentinel client (their recipe)

    def __repr__(self) -> str:
        return f"WorkerSpec(prefix={self.key_prefix!r})"

    @staticmethod
    def connection_of(client: redis.Redis) -> tuple[type[redis.Connection], dict[str, Any]]:
        """``client``'s connection class and the options a new pool needs (those that
        cannot cross a process boundary, such as a lock-holding registry, are left out)."""
        pool = client.connection_pool
        options = {}
        for name, value in pool.connection_kwargs.items():
            if name == "connection_pool":  # a Sentinel client's: the child makes its own
                continue
            with contextlib.suppress(Exception):
                pickle.dumps(value)
                options[name] = value
        return pool.connection_class, options

    def build(self) -> Searcher:
        """The child's worklist service: its own client, store and entry cache; no gate
        (the broker's process admitted the search) and no search process of its own."""
        client = client_like(self.connection, self.sentinel)
        keys = KeySchema(self.key_prefix, self.key_secret)
        store = WorklistStore(client, keys=keys, entry_cache=self.entry_cache)
        return self.service(store, **self.options)


class BroadSearches:
    """The search process, seen from the broker's process (module docstring)."""

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        timeout: float,
        context: Any = None,
    ) -> None:
        self._spec = spec
        self._timeout = timeout  # seconds one search may take, its wait for the child included
        self._context = context or multiprocessing.get_context("spawn")
        self._lock = threading.Lock()  # one search at a time in the child
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._failed_start = False  # logged once

    def __repr__(self) -> str:
        running = self._process is not None and self._process.is_alive()
        return f"BroadSearches(running={running})"

    @property
    def spec(self) -> WorkerSpec:
        return self._spec

    @property
    def pid(self) -> int | None:
        """The running child's process id; None when none runs."""
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    def page(self, profile: ScannerProfile, query: QidoQuery, today: dt.date) -> SearchPage:
        """``WorklistService.page`` run in the child. Raises what it raised there,
        ``BroadQueryBusy`` when it took too long or the child died, and
        ``SearchProcessUnavailable`` when no child can be started."""
        if not self._lock.acquire(timeout=self._timeout):
            raise BroadQueryBusy("the broker is busy with other broad searches; try again")
        try:
            conn = self._ready()
            try:
                conn.send((profile, query, today))
                if not conn.poll(self._timeout):
                    self._stop()
                    raise BroadQueryBusy("the search took too long; narrow it (date, station)")
                kind, value = conn.recv()
            except (EOFError, OSError):
                self._stop()
                log.warning("the search process stopped; it is started again for the next one")
                raise BroadQueryBusy("the search process stopped; try again") from None
            return _answer(kind, value)
        finally:
            self._lock.release()

    def _ready(self) -> Connection:
        """The pipe to a running child, started if need be."""
        if self._conn is not None and self._process is not None and self._process.is_alive():
            return self._conn
        self._stop()
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=serve, args=(theirs, self._spec), name="mwl-broker-search", daemon=True
        )
        try:
            process.start()
            theirs.close()
            if not ours.poll(_START_SECONDS) or ours.recv() != ("ready", None):
                raise OSError("the search process did not start")
        except (OSError, EOFError, pickle.PicklingError) as e:
            ours.close()
            _end(process)
            if not self._failed_start:
                log.error("no search process (%s): broad searches run in the broker's own", e)
                self._failed_start = True
            raise SearchProcessUnavailable from None
        self._process, self._conn = process, ours
        return ours

    def close(self) -> None:
        """Stop the child (the broker stops): a search still running in it is dropped."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        conn, self._conn = self._conn, None
        process, self._process = self._process, None
        if conn is not None:
            conn.close()  # the child's next read ends it
        if process is not None:
            _end(process)


def _end(process: BaseProcess) -> None:
    """Stop ``process``: SIGTERM, then SIGKILL if it lingers; reaped either way."""
    if process.is_alive():
        process.terminate()
        process.join(5)
        if process.is_alive():
            process.kill()
    process.join(5)
    with contextlib.suppress(ValueError):
        process.close()


def _answer(kind: str, value: Any) -> SearchPage:
    """The child's reply as the caller's result or error (``serve``)."""
    if kind == "page":
        page: SearchPage = value
        return page
    if kind == "refused":
        status, comment = value
        raise DicomServiceError(Status(status), comment)
    if kind == "store":
        raise StoreError(value)
    raise BroadQueryBusy(f"the search failed in the search process ({value}); try again")


# -- the child ---------------------------------------------------------------------


def serve(conn: Connection, spec: WorkerSpec) -> None:
    """The child's loop: build the service, then answer one search at a time until the
    broker closes the pipe. Errors go back as ``(kind, value)``; patient data never
    reaches the log."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the broker's to handle
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    service = spec.build()
    conn.send(("ready", None))
    while True:
        try:
            profile, query, today = conn.recv()
        except (EOFError, OSError):
            return
        reply = _search(service.page, profile, query, today)
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return
        except (pickle.PicklingError, TypeError, AttributeError):  # a defect; the loop goes on
            log.error("the search process could not send its answer")
            conn.send(("failed", "PicklingError"))


def _search(
    page: Callable[[ScannerProfile, QidoQuery, dt.date], SearchPage],
    profile: ScannerProfile,
    query: QidoQuery,
    today: dt.date,
) -> tuple[str, Any]:
    try:
        return "page", page(profile, query, today)
    except DicomServiceError as e:
        return "refused", (int(e.status), e.comment)
    except StoreError as e:
        return "store", str(e)
    except Exception as e:  # a defect: named by its type only (its text may hold a value)
        log.error("the search process failed: %s", type(e).__name__)
        return "failed", type(e).__name__
