"""The messages of a soak run, made from a seed, and the state they must leave behind.

A *case* is one patient with one order: a new order (NW), zero to two changes (XO) and
zero or one demographics update (ADT^A08) in a random order after the NW, and for some a
cancel (CA) last. Each change carries its version in the procedure description (OBR-4.2
``CT head V<n>``) and each A08 its version in the patient name (``SOAK<k>^V<n>``); every
later message of the case carries the current name, MSH-7 rises within a case. So the final
entry shows which message was applied last: an old message applied again after a newer one
would show an old version, and the message log says how often each one was applied. Some
cases that are not canceled are performed by the modality (MPPS IN PROGRESS, COMPLETED),
whose status messages go to the RIS. A case's messages all go over one connection, in order;
a connection interleaves the cases it carries.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

__all__ = ["Case", "Message", "Workload", "make_workload"]

_ORM = (
    "MSH|^~\\&|RIS|RADIOLOGY|MWL_BROKER|HOSPITAL|{ts}||ORM^O01|{control}|P|2.3.1\r"
    "PID|||SOAKPAT-{k}^^^HOSP||SOAK{k}^V{name}||19700101|F\r"
    "PV1||O|RAD^ROOM1^1|||||1234^Smith^Anna|||||||||||V-{k}\r"
    "ORC|{orc1}|SOAK-{k}^RIS|SOAKF-{k}^RIS||{orc5}||1^once^^{when}^^R||{ts}\r"
    "OBR|1|SOAK-{k}^RIS|SOAKF-{k}^RIS|CTHEAD^CT head V{version}^LOCAL||||||||||||"
    "1234^Smith^Anna||SACC-{k}|RP-{k}|SPS-{k}||||CT|||1^once^^{when}^^R\r"
)
_A08 = (
    "MSH|^~\\&|RIS|RADIOLOGY|MWL_BROKER|HOSPITAL|{ts}||ADT^A08^ADT_A01|{control}|P|2.5.1\r"
    "EVN|A08|{ts}\r"
    "PID|||SOAKPAT-{k}^^^HOSP||SOAK{k}^V{name}||19700101|F\r"
    "PV1||O\r"
)


@dataclass(frozen=True)
class Message:
    """One HL7 message of a case: its control ID (MSH-10) and bytes."""

    case: int
    control: str
    kind: str  # NW, XO, A08, CA
    raw: bytes


@dataclass
class Case:
    """One patient and order, and what its messages must leave behind."""

    number: int
    messages: list[Message] = field(default_factory=list)
    version: int = 0  # OBR-4.2 "CT head V<version>" of the last NW/XO
    name: int = 0  # PID-5 "SOAK<k>^V<name>" of the last message
    canceled: bool = False
    performed: bool = False  # the modality performs it (MPPS IN PROGRESS, COMPLETED)

    @property
    def accession(self) -> str:
        return f"SACC-{self.number}"

    @property
    def order(self) -> str:
        """ORC-2's identifier, as the status messages to the RIS carry it."""
        return f"SOAK-{self.number}"

    @property
    def patient_name(self) -> str:
        return f"SOAK{self.number}^V{self.name}"

    @property
    def description(self) -> str:
        return f"CT head V{self.version}"


@dataclass
class Workload:
    """The cases, and the messages each connection sends, in order."""

    seed: int
    cases: list[Case]
    lanes: list[list[Message]]

    @property
    def messages(self) -> int:
        return sum(len(lane) for lane in self.lanes)

    def case_of(self, accession: str) -> Case | None:
        prefix = "SACC-"
        if not accession.startswith(prefix) or not accession[len(prefix) :].isdigit():
            return None
        number = int(accession[len(prefix) :])
        return self.cases[number] if number < len(self.cases) else None


def _case(rng: random.Random, k: int, seed: int, start: datetime, when: str) -> Case:
    case = Case(k)
    steps = ["XO"] * rng.choice((0, 1, 1, 2)) + ["A08"] * rng.choice((0, 0, 1))
    rng.shuffle(steps)
    steps = ["NW", *steps]
    case.canceled = rng.random() < 0.15
    if case.canceled:
        steps.append("CA")
    case.performed = not case.canceled and rng.random() < 0.25
    for i, kind in enumerate(steps):
        if kind == "XO":
            case.version += 1
        elif kind == "A08":
            case.name += 1
        control = f"S{seed}-{k}-{i}"
        values = {
            "ts": (start + timedelta(seconds=i)).strftime("%Y%m%d%H%M%S"),
            "control": control,
            "k": k,
            "name": case.name,
            "version": case.version,
            "when": when,
            "orc1": kind,
            "orc5": "CA" if kind == "CA" else "SC",
        }
        template = _A08 if kind == "A08" else _ORM
        raw = template.format(**values).encode()
        case.messages.append(Message(k, control, kind, raw))
    return case


def _interleave(rng: random.Random, cases: list[Case]) -> list[Message]:
    """The cases' messages in one sequence, each case's in its own order."""
    pending = [list(reversed(case.messages)) for case in cases]
    out: list[Message] = []
    window: list[list[Message]] = []
    while pending or window:
        while pending and len(window) < 4:
            window.append(pending.pop(0))
        lane = rng.choice(window)
        out.append(lane.pop())
        if not lane:
            window.remove(lane)
    return out


def make_workload(messages: int, connections: int, seed: int) -> Workload:
    """Cases until about ``messages`` messages, spread over ``connections`` lanes."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    start = now - timedelta(days=1)  # MSH-7 in the past: never ahead of the broker's clock
    when = (now + timedelta(days=30)).strftime("%Y%m%d") + "093000"  # no purge can take it
    cases: list[Case] = []
    total = 0
    while total < messages:
        case = _case(rng, len(cases), seed, start, when)
        cases.append(case)
        total += len(case.messages)
    lanes = [
        _interleave(rng, [c for c in cases if c.number % connections == i])
        for i in range(connections)
    ]
    return Workload(seed, cases, lanes)
