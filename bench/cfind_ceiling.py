"""A minimal pynetdicom MWL SCP answering from precomputed answers: the C-FIND ceiling.

Generates the benchmark's entries and queries (``bench.cfind_data``), matches
every query in advance and builds each answer ``Dataset`` once (with the
broker's response builder, so answers have the same keys and size as the
broker's). Its C-FIND handler only looks the query up and yields the stored
answers: what is left is pynetdicom's own cost per query and per answer, which
no pynetdicom-based server can go below. No pacing, no logging of identifiers.

``--socket both`` (default) sets TCP_NODELAY on accepted sockets and renews
TCP_QUICKACK on every receive, as the broker does; ``nodelay`` only the first;
``none`` leaves pynetdicom's defaults (Nagle on, delayed ACKs). Prints
``CEILING SCP 127.0.0.1:<port> answers=<n> rss_kib=<before>/<after>``.

    .venv/bin/python -m bench.cfind_ceiling --entries 10000 [--seed 1] [--socket both]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, DEFAULT_TRANSFER_SYNTAXES, _config, evt

from bench.cfind_data import (
    Query,
    all_queries,
    entry_dataset,
    expected_matches,
    generate,
    make_queries,
    query_dataset,
    query_key,
)
from broker.dicom.response import build_response
from broker.dicom.server import ModalityWorklistInformationFind

__all__ = ["precompute", "vm_rss_kib"]


def vm_rss_kib(pid: int | str = "self") -> int:
    """Resident set size of a process, from /proc (KiB)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def precompute(count: int, seed: int) -> dict[Query, list[Dataset]]:
    """Every benchmark query's answers, built once."""
    entries = generate(count, seed)
    queries = list(all_queries(make_queries(entries, seed)))
    matches = expected_matches(entries, queries)
    built: dict[int, Dataset] = {}
    answers: dict[Query, list[Dataset]] = {}
    for q in queries:
        identifier = query_dataset(q)
        answers[q] = []
        for e in matches[q]:
            if e.n not in built:
                built[e.n] = entry_dataset(e)
            answers[q].append(build_response(identifier, built[e.n], character_set="ISO_IR 192"))
    return answers


def _nodelay(event: Any) -> None:
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _quickack(event: Any) -> None:
    with contextlib.suppress(AttributeError, OSError):
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--socket", choices=("both", "nodelay", "none"), default="both")
    args = parser.parse_args()
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    _config.LOG_HANDLER_LEVEL = "none"
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)

    rss_before = vm_rss_kib()
    answers = precompute(args.entries, args.seed)
    held = sum(len(a) for a in answers.values())
    gc.collect()
    gc.freeze()  # no full collections over the held answers while serving

    def handle_find(event: Any) -> Iterator[tuple[int, Dataset | None]]:
        found = answers.get(query_key(event.identifier))
        if found is None:
            yield 0xC001, None
            return
        for answer in found:
            yield 0xFF00, answer

    handlers: list[Any] = [(evt.EVT_C_FIND, handle_find)]
    if args.socket in ("both", "nodelay"):
        handlers.append((evt.EVT_CONN_OPEN, _nodelay))
    if args.socket == "both":
        handlers.append((evt.EVT_DATA_RECV, _quickack))
    ae = AE(ae_title="CEILING")
    ae.maximum_associations = 32
    ae.dimse_timeout = ae.network_timeout = 600
    ae.add_supported_context(ModalityWorklistInformationFind, DEFAULT_TRANSFER_SYNTAXES)
    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=handlers)
    assert server is not None  # block=False: the server, started in its own thread
    port = server.server_address[1]
    print(
        f"CEILING SCP 127.0.0.1:{port} answers={held} rss_kib={rss_before}/{vm_rss_kib()}",
        flush=True,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    server.shutdown()


if __name__ == "__main__":
    main()
