"""The soak run (``tests.crash``): start the receiver and the broker, send the workload
over resending connections while the modality performs cases and the broker (and once its
redis-server) is killed at chosen points, then check everything (``tests.crash.checks``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.app import build_services
from broker.cli.connect import redis_for_command
from broker.settings import load_settings
from tests.crash import checks
from tests.crash.broker_process import BrokerProcess, Window, write_settings
from tests.crash.modality import Modality
from tests.crash.senders import Senders
from tests.crash.workload import Case, Workload, make_workload
from tests.integration.outbound_helpers import Receiver
from tests.scu import ModalityWorklistInformationFind, leave_responses_to_requests
from tests.waiting import wait_for

__all__ = ["chaos_plan", "run_soak"]

_RUN_SECONDS = 3600.0  # the longest the senders may take, kills and restarts included


def chaos_plan(broker_kills: int, redis_kills: int) -> list[str]:
    """The kills in order: the redis-server ones spread among the broker ones."""
    kinds = ["broker"] * broker_kills
    for j in range(redis_kills):
        kinds.insert(round((j + 1) * len(kinds) / (redis_kills + 1)), "redis")
    return kinds


def run_soak(folder: Path, *, messages: int, connections: int = 8, broker_kills: int = 2,
             redis_kills: int = 1, seed: int = 1) -> checks.Report:  # fmt: skip
    """The whole run in ``folder``; the report of its checks."""
    workload = make_workload(messages, connections, seed)
    receiver = Receiver(folder / "ris.jsonl")
    receiver.start()
    broker = BrokerProcess(folder, write_settings(folder, receiver.port))
    report = checks.Report(messages=workload.messages, cases=len(workload.cases))
    try:
        broker.start()
        started = time.monotonic()
        modality = Modality(lambda: broker.dicom_port, seed)
        modality.start()
        senders = Senders(workload, lambda: broker.hl7_port, _performer(modality))
        senders.start()
        windows = _chaos(broker, senders, chaos_plan(broker_kills, redis_kills))
        senders.join(_RUN_SECONDS)
        report.seconds = time.monotonic() - started
        phase = report.phases
        phase["sent"] = report.seconds
        modality.finish()
        modality.join(600)
        performed = modality.done
        phase["performed"] = time.monotonic() - started
        _wait_quietly(lambda: _statuses(receiver) >= 2 * len(performed), "status at the RIS")
        phase["status delivered"] = time.monotonic() - started
        answers = find_all(broker.dicom_port)
        phase["C-FIND"] = time.monotonic() - started
        exit_code = broker.stop()
        phase["stopped"] = time.monotonic() - started
        if exit_code != 0:
            report.note(f"the broker's exit code after SIGTERM: {exit_code}")
        _fill(report, workload, senders, modality)
        checks.check_redis_windows(report, windows, senders.log, started)
        checks.check_find(report, answers, workload, senders.log, performed,
                          {"COMPLETED", "CANCELED", "DISCONTINUED"})  # fmt: skip
        checks.check_outbound(report, receiver.records(), workload, performed)
        _check_store(report, broker, workload, senders, performed)
        phase["checked"] = time.monotonic() - started
    finally:
        broker.stop()
        receiver.kill()
    return report


def _performer(modality: Modality) -> Callable[[Case], None]:
    def done(case: Case) -> None:
        if case.performed:
            modality.cases.put(case)

    return done


def _chaos(broker: BrokerProcess, senders: Senders, plan: list[str]) -> list[Window]:
    """Each kill once the share of messages acknowledged reaches its point; then restart."""
    windows = []
    total = senders.workload.messages
    for i, kind in enumerate(plan):
        point = total * (i + 1) // (len(plan) + 1)
        wait_for(lambda p=point: senders.log.count() >= p, f"{point} messages acknowledged",  # type: ignore[misc]
                 _RUN_SECONDS)  # fmt: skip
        window = broker.kill() if kind == "broker" else broker.kill_redis()
        window.ready = broker.start()
        windows.append(window)
    return windows


def _wait_quietly(condition: Callable[[], bool], what: str) -> None:
    with contextlib.suppress(AssertionError):  # the checks count what is missing
        wait_for(condition, what, 120)


def _statuses(receiver: Receiver) -> int:
    return len({(r["order"], r["status"]) for r in receiver.records()})


def find_all(port: int) -> list[Dataset]:
    """Every entry the broker's C-FIND answers (empty keys: all stations, all dates)."""
    ae = AE(ae_title="SOAK_CHECK")
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 600
    query = Dataset()
    for keyword in ("PatientName", "PatientID", "AccessionNumber", "RequestedProcedureDescription"):
        setattr(query, keyword, "")
    step = Dataset()
    step.ScheduledProcedureStepStatus = ""
    query.ScheduledProcedureStepSequence = [step]
    assoc = leave_responses_to_requests(ae.associate("127.0.0.1", port, ae_title="MWL_BROKER"))
    assert assoc.is_established, "no association for the final C-FIND"
    try:
        replies = list(assoc.send_c_find(query, ModalityWorklistInformationFind))
    finally:
        assoc.release()
    final = replies[-1][0].get("Status") if replies else None
    assert final == 0, f"the final C-FIND ended with status {final} after {len(replies)} replies"
    return [ds for status, ds in replies if ds is not None and status.Status in (0xFF00, 0xFF01)]


def _fill(report: checks.Report, workload: Workload, senders: Senders, modality: Modality) -> None:
    log = senders.log
    report.acked = log.count()
    report.answers = dict(log.answers)
    report.unanswered = (
        len(log.unanswered)
        + sum(1 for lane in workload.lanes for m in lane if m.control not in log.acked)
        - len(log.unanswered)
    )
    report.performed = len(modality.done)
    report.modality_retries = modality.retries
    report.modality_problems = sum(modality.problems.values())
    for problem in modality.problems:
        report.note(f"modality: {problem}")


def _check_store(report: checks.Report, broker: BrokerProcess, workload: Workload,
                 senders: Senders, performed: set[int]) -> None:  # fmt: skip
    settings = load_settings(config_file=broker.config, environ={})
    with redis_for_command(settings) as redis:
        services = build_services(settings, redis.client)
        try:
            checks.check_store(report, services, workload, senders.log, performed)
        finally:
            services.close()
