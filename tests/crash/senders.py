"""The RIS side of a soak run: one thread per lane (connection), each sending its messages
in order and resending one until it is answered AA (``tests.resend``). Every answer is
logged with its times, so the checks can tell what was acknowledged and when."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.crash.workload import Case, Message, Workload
from tests.resend import ResendingClient

__all__ = ["Acked", "SenderLog", "Senders"]

_PAUSE = 0.1  # between a try that failed and the resend


@dataclass(frozen=True)
class Acked:
    """A message answered AA: when it was first sent, and the try that got the AA."""

    first_sent: float
    sent: float
    answered: float


@dataclass
class SenderLog:
    """What every sender saw."""

    answers: Counter[str] = field(default_factory=Counter)  # per try: AA, AE, AR, no answer
    acked: dict[str, Acked] = field(default_factory=dict)  # by control ID
    unanswered: list[str] = field(default_factory=list)  # given up on (deadline)
    refusals: list[tuple[str, float, float]] = field(default_factory=list)  # AE/AR: code, times
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self) -> int:
        return len(self.acked)


class _Lane(threading.Thread):
    def __init__(self, index: int, senders: Senders, messages: list[Message]) -> None:
        super().__init__(name=f"soak-sender-{index}", daemon=True)
        self._senders = senders
        self._messages = messages

    def run(self) -> None:
        s = self._senders
        client = ResendingClient(s.port, timeout=s.timeout, pause=_PAUSE)
        try:
            for message in self._messages:
                if s.stopping.is_set():
                    return
                s.send(client, message)
        finally:
            client.close()


class Senders:
    """The lanes of ``workload``; ``port()`` is where the broker listens now (0: down).
    ``on_case_done(case)`` is called once the last message of a case is acknowledged."""

    def __init__(
        self,
        workload: Workload,
        port: Callable[[], int],
        on_case_done: Callable[[Case], None],
        *,
        message_seconds: float = 180.0,
        timeout: float = 30.0,
    ) -> None:
        self.workload = workload
        self.port = port
        self.timeout = timeout
        self.log = SenderLog()
        self.stopping = threading.Event()
        self._on_case_done = on_case_done
        self._message_seconds = message_seconds
        self._last = {case.messages[-1].control: case for case in workload.cases}
        self._lanes = [_Lane(i, self, lane) for i, lane in enumerate(workload.lanes)]

    def __repr__(self) -> str:
        return f"Senders(lanes={len(self._lanes)}, acked={self.log.count()})"

    def start(self) -> None:
        for lane in self._lanes:
            lane.start()

    def join(self, seconds: float) -> bool:
        """Wait for every lane; whether all ended."""
        deadline = time.monotonic() + seconds
        for lane in self._lanes:
            lane.join(max(0.0, deadline - time.monotonic()))
        return not any(lane.is_alive() for lane in self._lanes)

    def send(self, client: ResendingClient, message: Message) -> None:
        log = self.log
        first = time.monotonic()
        until = first + self._message_seconds
        for attempt in client.attempts(message.raw, until):
            with log.lock:
                log.answers[attempt.code] += 1
                if attempt.code == "AA":
                    log.acked[message.control] = Acked(first, attempt.sent, attempt.answered)
                elif attempt.code in ("AE", "AR"):
                    log.refusals.append((attempt.code, attempt.sent, attempt.answered))
            if attempt.code == "AA":
                case = self._last.get(message.control)
                if case is not None:
                    self._on_case_done(case)
                return
        with log.lock:
            log.unanswered.append(message.control)
