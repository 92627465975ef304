"""The admin console benchmark's clients: a viewer over real HTTP (``httpx``, keep-alive),
the searches an admin makes, and an "admin" browsing in a process of its own.

- :class:`Console` logs in as a user (``POST /api/session``: the session cookie and its
  CSRF token) and times single requests.
- :func:`searches` makes the searches of each kind from the benchmark's entries
  (``bench.cfind_data``): by accession, by patient name prefix (a family name's first three
  letters and ``*``), a station's day, and an empty search (the default limit, 100).
- :func:`browse` is one admin: the dashboard's event stream open (``GET /api/events``,
  read in a thread) and, every ``interval`` seconds, a search (the kinds in turn), the
  message listing (``GET /api/messages``) and the detail of an entry the search found.
  It runs until ``stop`` is set and puts its tally (requests, errors by cause, events
  received) on ``out``. A process of its own, so its work does not compete with the
  measured clients for the benchmark's interpreter lock.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from typing import Any

import httpx

from bench.cfind_data import Entry

__all__ = ["KINDS", "Console", "browse", "searches"]

KINDS = {
    "accession": "by accession",
    "name": "by patient name prefix",
    "station": "a station's day",
    "empty": "empty (default limit)",
}
SPS = "ScheduledProcedureStepSequence."
Criteria = dict[str, str]


def searches(entries: list[Entry], per_kind: int, seed: int = 1) -> dict[str, list[Criteria]]:
    """``per_kind`` distinct searches of each kind, the same for the same entries."""
    rng = random.Random(f"admin-bench/{seed}/{len(entries)}")
    picked = rng.sample(entries, per_kind)
    return {
        "accession": [{"AccessionNumber": e.accession} for e in picked],
        "name": [{"PatientName": e.patient_name[:3] + "*"} for e in picked],
        "station": [
            {
                f"{SPS}ScheduledStationAETitle": e.station,
                f"{SPS}ScheduledProcedureStepStartDate": e.date,
            }
            for e in picked
        ],
        "empty": [{} for _ in picked],
    }


class Console:
    """One logged-in console user over HTTP."""

    def __init__(self, base: str, user: str, password: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=60)
        answer = self.http.post("/api/session", json={"user": user, "password": password})
        answer.raise_for_status()
        self.http.headers["X-CSRF-Token"] = answer.json()["csrf"]

    def close(self) -> None:
        self.http.close()

    def search(self, criteria: Criteria) -> tuple[float, int, list[str]]:
        """One worklist search: (ms, HTTP status, entry ids found)."""
        t0 = time.perf_counter()
        answer = self.http.post("/api/worklist/search", json={"criteria": criteria})
        ms = (time.perf_counter() - t0) * 1000
        ids = [e["entry_id"] for e in answer.json()["entries"]] if answer.is_success else []
        return ms, answer.status_code, ids

    def get(self, path: str) -> int:
        """A GET whose body is read; its status."""
        return self.http.get(path).status_code

    def stream(self, stop: threading.Event, tally: Counter[str]) -> None:
        """Read the dashboard's event stream until ``stop`` (then the stream is dropped)."""
        try:
            with self.http.stream("GET", "/api/events", timeout=None) as answer:
                if not answer.is_success:
                    tally[f"events HTTP {answer.status_code}"] += 1
                    return
                for line in answer.iter_lines():
                    if line.startswith("event: snapshot"):
                        tally["events"] += 1
                    if stop.is_set():
                        return
        except httpx.HTTPError as e:
            if not stop.is_set():
                tally[f"events {type(e).__name__}"] += 1


def browse(
    base: str,
    login: tuple[str, str],
    plan: dict[str, list[Criteria]],
    interval: float,
    ready: Any,
    stop: Any,
    out: Any,
) -> None:
    """One admin browsing until ``stop`` (see the module docstring); ``ready`` once logged in."""
    console = Console(base, *login)
    tally: Counter[str] = Counter()
    stream_stop = threading.Event()
    streamer = threading.Thread(target=console.stream, args=(stream_stop, tally), daemon=True)
    streamer.start()
    ready.set()
    queue = [c for group in zip(*plan.values(), strict=True) for c in group]
    step = 0
    next_start = time.monotonic()
    while not stop.is_set():
        _, status, ids = console.search(queue[step % len(queue)])
        statuses = [status, console.get("/api/messages?limit=50")]
        if ids:
            statuses.append(console.get(f"/api/worklist/entries/{ids[0]}"))
        tally["requests"] += len(statuses)
        tally.update(f"HTTP {s}" for s in statuses if s != 200)
        step += 1
        next_start = max(next_start + interval, time.monotonic())
        stop.wait(next_start - time.monotonic())
    stream_stop.set()
    console.close()  # ends the stream's connection too
    streamer.join(5)
    out.put(dict(tally))
