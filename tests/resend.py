"""A sender as a RIS interface engine is one: a message not answered AA (a NAK, a lost
connection, no answer in time, nobody listening) is sent again, same bytes and MSH-10,
until it is acknowledged or a deadline passes. Used by the kill-under-load harnesses
(``tests.sentinel_failover``, ``tests.crash``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from broker.mllp.client import MLLPClient, MLLPClientError, summarize_ack

__all__ = ["NO_ANSWER", "Attempt", "ResendingClient"]

NO_ANSWER = "no answer"


@dataclass(frozen=True)
class Attempt:
    """One try: the ACK code (or ``NO_ANSWER``), when it was sent and when answered."""

    code: str
    sent: float
    answered: float


class ResendingClient:
    """One connection at a time to ``port()`` (0: nobody listens now), reopened after a
    failure; ``pause`` seconds between a try that failed and the next."""

    def __init__(self, port: Callable[[], int], *, timeout: float = 30.0, pause: float = 0.05):
        self._port = port
        self._timeout = timeout
        self._pause = pause
        self._client: MLLPClient | None = None

    def __repr__(self) -> str:
        return f"ResendingClient(connected={self._client is not None})"

    def attempts(self, message: bytes, until: float) -> Iterator[Attempt]:
        """Send ``message`` until AA or ``until`` (monotonic): one ``Attempt`` per try."""
        while time.monotonic() < until:
            attempt = self._try(message)
            yield attempt
            if attempt.code == "AA":
                return
            time.sleep(self._pause)  # then resend, as an interface engine does

    def _try(self, message: bytes) -> Attempt:
        sent = time.monotonic()
        try:
            if self._client is None:
                port = self._port()
                if not port:
                    raise MLLPClientError("nobody listens")
                self._client = MLLPClient("127.0.0.1", port, timeout=self._timeout)
            code = summarize_ack(self._client.send(message)).code
        except MLLPClientError:
            self.close()
            code = NO_ANSWER
        return Attempt(code, sent, time.monotonic())

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
