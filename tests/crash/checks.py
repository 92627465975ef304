"""After a soak run: what the broker holds, read with its own store readers, and what the
receiver got, compared with what was sent and acknowledged. Each check counts its failures
in the ``Report``; a sound broker leaves every failure count at 0."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from broker.services.application import Services
from broker.store.message_records import MessageQuery, MessageSummary, Outcome
from broker.worklist.model import CandidateCriteria
from tests.crash.broker_process import Window
from tests.crash.senders import SenderLog
from tests.crash.workload import Case, Workload

__all__ = ["Report", "check_find", "check_outbound", "check_redis_windows", "check_store"]

_APPLIED = (Outcome.ACCEPTED, Outcome.OUT_OF_ORDER)
_STATUS = ("IP", "CM")  # ORC-5 of the status messages to the RIS for a performed case, in order


@dataclass
class Report:
    """Counts per check: the ``*_failures`` ones (``failures``) must all be 0."""

    messages: int = 0
    cases: int = 0
    acked: int = 0
    answers: dict[str, int] = field(default_factory=dict)  # per try
    broker_kills: int = 0
    redis_kills: int = 0
    exit_codes: list[int | None] = field(default_factory=list)  # after each kill
    performed: int = 0  # cases the modality completed
    modality_retries: int = 0
    status_messages: int = 0  # received by the RIS, resends included
    seconds: float = 0.0
    unanswered: int = 0  # messages a sender gave up on
    lost: int = 0  # AA'd messages whose effect is not in the store
    stale: int = 0  # entries not in the state the last acknowledged message left
    duplicated: int = 0  # messages applied more than once, orders with more than one entry
    unsent: int = 0  # entries or applied messages nobody sent
    aa_while_redis_down: int = 0
    find_mismatches: int = 0  # C-FIND answers that differ from the store's expected state
    status_missing: int = 0  # status messages the RIS should have and has not
    status_duplicated: int = 0  # a status delivered twice under different MSH-10s
    status_out_of_order: int = 0
    status_unexpected: int = 0
    modality_problems: int = 0
    details: list[str] = field(default_factory=list)  # the first few failures, said
    phases: dict[str, float] = field(default_factory=dict)  # seconds from the start, by phase
    windows: list[str] = field(default_factory=list)  # each kill and restart, said

    _FAILURES = ("unanswered", "lost", "stale", "duplicated", "unsent", "aa_while_redis_down",
                 "find_mismatches", "status_missing", "status_duplicated", "status_out_of_order",
                 "status_unexpected", "modality_problems")  # fmt: skip

    def failures(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self._FAILURES}

    def note(self, text: str) -> None:
        if len(self.details) < 20:
            self.details.append(text)

    def lines(self) -> list[str]:
        return [
            f"messages {self.messages} in {self.cases} cases, {self.acked} acknowledged AA, "
            f"in {self.seconds:.0f} s",
            "answers per try: " + ", ".join(f"{k} {v}" for k, v in sorted(self.answers.items())),
            f"broker SIGKILLs {self.broker_kills}, redis-server SIGKILLs {self.redis_kills}, "
            f"broker exit codes after them {self.exit_codes}",
            "kills and ready again (s from start): " + ", ".join(self.windows),
            f"MPPS performed {self.performed} (retries {self.modality_retries}); status "
            f"messages at the RIS {self.status_messages} (resends included)",
            "phases (s from start): " + ", ".join(f"{k} {v:.0f}" for k, v in self.phases.items()),
            "failures: " + ", ".join(f"{k} {v}" for k, v in self.failures().items()),
            *self.details,
        ]


def _log(services: Services) -> Iterator[MessageSummary]:
    before: int | None = None
    while True:
        page = services.message_log.find(MessageQuery(limit=1000, before_id=before))
        yield from page.items
        if page.next_before is None:
            return
        before = page.next_before


def check_store(report: Report, services: Services, workload: Workload, log: SenderLog,
                performed: set[int]) -> None:  # fmt: skip
    """Lost, stale, duplicated and unsent, from the message log and the entries."""
    sent = {m.control for lane in workload.lanes for m in lane}
    applied: Counter[str] = Counter()
    for row in _log(services):
        if row.outcome in _APPLIED:
            applied[row.control_id] += 1
    for control in log.acked:
        if not applied[control]:
            report.lost += 1
            report.note(f"lost: {control} was answered AA and is not applied")
    for control, times in applied.items():
        if control not in sent:
            report.unsent += 1
            report.note(f"unsent: {control} applied, never sent")
        elif times > 1:
            report.duplicated += 1
            report.note(f"duplicated: {control} applied {times} times")
    store = services.store
    entries: dict[int, list[Dataset]] = defaultdict(list)
    for ds in store.candidates(CandidateCriteria()):
        case = workload.case_of(str(ds.get("AccessionNumber", "")))
        if case is None:
            report.unsent += 1
            report.note(f"unsent: an entry with accession {ds.get('AccessionNumber')!r}")
            continue
        entries[case.number].append(ds)
    for case in workload.cases:
        _check_case(report, case, entries.get(case.number, []), log, performed)


def expected_status(case: Case, performed: set[int]) -> str:
    if case.canceled:
        return "CANCELED"
    return "COMPLETED" if case.number in performed else "SCHEDULED"


def _check_case(
    report: Report, case: Case, found: list[Dataset], log: SenderLog, performed: set[int]
) -> None:
    if not all(m.control in log.acked for m in case.messages):
        return  # not every message acknowledged: the end state is not defined (unanswered)
    if len(found) != 1:
        report.duplicated += len(found) > 1
        report.lost += not found
        report.note(f"case {case.number}: {len(found)} entries")
        return
    problem = _differs(case, found[0], performed)
    if problem:
        report.stale += 1
        report.note(f"case {case.number}: {problem}")


def _differs(case: Case, ds: Dataset, performed: set[int]) -> str:
    name, what = str(ds.get("PatientName", "")), str(ds.get("RequestedProcedureDescription", ""))
    if name != case.patient_name:
        return f"patient name {name!r}, expected {case.patient_name!r}"
    if what != case.description:
        return f"description {what!r}, expected {case.description!r}"
    status = str(ds.ScheduledProcedureStepSequence[0].get("ScheduledProcedureStepStatus"))
    if status != expected_status(case, performed):
        return f"status {status}, expected {expected_status(case, performed)}"
    return ""


def check_find(report: Report, answers: list[Dataset], workload: Workload, log: SenderLog,
               performed: set[int], hidden: set[str]) -> None:  # fmt: skip
    """The C-FIND of every entry: each visible case once, as the store has it."""
    seen: Counter[int] = Counter()
    for ds in answers:
        case = workload.case_of(str(ds.get("AccessionNumber", "")))
        if case is None:
            report.find_mismatches += 1
            continue
        seen[case.number] += 1
        if _differs(case, ds, performed):
            report.find_mismatches += 1
            report.note(f"C-FIND case {case.number}: {_differs(case, ds, performed)}")
    for case in workload.cases:
        acked = all(m.control in log.acked for m in case.messages)
        visible = expected_status(case, performed) not in hidden
        if acked and seen[case.number] != int(visible):
            report.find_mismatches += 1
            report.note(f"C-FIND case {case.number}: answered {seen[case.number]} times")


def check_redis_windows(
    report: Report, windows: list[Window], log: SenderLog, origin: float
) -> None:
    """No AA for a message sent after a kill and answered before the next start was ready."""
    for acked in log.acked.values():
        for w in windows:
            if w.killed <= acked.sent and acked.answered < w.ready:
                report.aa_while_redis_down += 1
    report.broker_kills = sum(w.what == "broker" for w in windows)
    report.redis_kills = sum(w.what == "redis" for w in windows)
    report.exit_codes = [w.exit_code for w in windows]
    report.windows = [f"{w.what} {w.killed - origin:.1f}-{w.ready - origin:.1f}" for w in windows]


def check_outbound(report: Report, records: list[dict[str, Any]], workload: Workload,
                   performed: set[int]) -> None:  # fmt: skip
    """Every expected status once (after de-duplication by MSH-10), in order, per order."""
    report.status_messages = len(records)
    per_order: dict[str, list[str]] = defaultdict(list)
    controls: set[str] = set()
    for row in records:
        if row["control"] in controls:
            continue  # a resend of one already received: the RIS de-duplicates by MSH-10
        controls.add(row["control"])
        per_order[row["order"]].append(row["status"])
    expected = {workload.cases[k].order: list(_STATUS) for k in performed}
    for order, got in per_order.items():
        want = expected.get(order)
        if want is None:
            report.status_unexpected += len(got)
            report.note(f"status to the RIS for {order} that did nothing: {got}")
        elif got != want:
            report.status_duplicated += sum(n - 1 for n in Counter(got).values() if n > 1)
            report.status_out_of_order += sorted(set(got)) == sorted(want) and got != want
            report.note(f"status to the RIS for {order}: {got}, expected {want}")
    report.status_missing += sum(1 for o, w in expected.items() for s in w
                                 if s not in per_order.get(o, []))  # fmt: skip
