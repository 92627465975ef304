"""Conformance run: every HL7 file of the shared corpus through a real broker, message by message.

    python -m tests.conformance.run_corpus --report build/conformance

Starts ``mwl-broker serve`` (127.0.0.1, ports 0, a temporary data directory),
sends each message of each file under the corpus's ``hl7`` folder (``tests/corpus.py``) over
MLLP with our client, reads the ACK (HL7 v2.5.1 §2.9 original mode), and after
each message counts the worklist with a broad MWL C-FIND. Writes
``report.md``, ``report.json`` and ``broker.log`` to the report directory and
prints the table and a summary.

Exit status 1 when the broker crashed or exited, a message got no response,
an ACK had no MSA or did not echo MSH-10 in MSA-2, a refused message changed
the worklist, or an order (ORM^O01, OMI^O23, OMG^O19) neither changed the
worklist nor was refused with an ERR segment naming a location (a resend that
got the very same ACK as its original is fine: HL7 §2.10.1 duplicate handling);
2 when the corpus is missing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from broker.hl7.message import peek_header
from broker.mllp.client import MLLPClient, MLLPClientError, split_messages, summarize_ack
from tests.conformance.broker_process import (
    BrokerExited,
    BrokerProcess,
    Diff,
    Worklist,
    diff,
    quiet_pynetdicom,
)
from tests.conformance.report import ack_errors, render_markdown, summary_lines, write_reports
from tests.corpus import corpus_root

DEFAULT_CORPUS = corpus_root() / "hl7"
ORDER_TYPES = frozenset({"ORM^O01", "OMI^O23", "OMG^O19"})
COMMIT_BLOCKS = frozenset({b"\x06", b"\x15"})  # MLLP Release 2 (negative) commit acknowledgement
# Order controls that only change the status of an order's entries: for an
# order not on the worklist they are recorded (a tombstone) and change nothing.
STATUS_ONLY_CONTROLS = frozenset({"CA", "DC", "OC"})
_REFUSALS = frozenset({"AE", "AR", "CE", "CR"})
_ACCEPTS = frozenset({"AA", "CA"})


@dataclass
class Row:
    """One message of the run, as reported."""

    file: str
    index: int
    msh9: str
    msh10: str
    ack: str = ""
    err_location: str = ""
    err_code: str = ""
    err_text: str = ""
    created: int = 0
    changed: int = 0
    removed: int = 0
    entries: int = 0
    verdict: str = ""
    failure: str = ""  # empty: conformant
    note: str = ""
    order_controls: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outgoing:
    """A message to send, where it came from and a note on how it was read."""

    file: str
    index: int
    payload: bytes
    note: str = ""


def corpus_messages(corpus: Path) -> list[Outgoing]:
    """Every message of every file, in path order; an unsplittable file goes as one frame."""
    out: list[Outgoing] = []
    for path in sorted(p for p in corpus.rglob("*") if p.is_file()):
        name = path.relative_to(corpus).as_posix()
        data = path.read_bytes()
        try:
            messages = split_messages(data)
        except ValueError as e:
            raw = data.translate(None, b"\x0b\x1c")  # MLLP block bytes cannot go inside a frame
            out.append(Outgoing(name, 1, raw, f"not split ({e}): sent whole"))
            continue
        if not messages:
            out.append(Outgoing(name, 0, b"", "no HL7 message in the file: nothing sent"))
        out += [Outgoing(name, i, m) for i, m in enumerate(messages, start=1)]
    return out


class Run:
    """Sends messages one by one and judges each outcome."""

    def __init__(self, broker: BrokerProcess, timeout: float) -> None:
        self.broker = broker
        self.timeout = timeout
        self.client: MLLPClient | None = None
        self.worklist: Worklist = broker.worklist()
        self.first_acks: dict[tuple[str, str, str], bytes] = {}

    def send(self, item: Outgoing) -> Row:
        """Send one message (reconnecting if needed) and judge the answer."""
        header = peek_header(item.payload) or {}
        row = Row(
            item.file,
            item.index,
            header.get("message_type", ""),
            header.get("control_id", ""),
            note=item.note,
            order_controls=_order_controls(item.payload),
        )
        if not item.payload:
            row.verdict = "skipped"
            return row
        try:
            if self.client is None:
                self.client = MLLPClient("127.0.0.1", self.broker.hl7_port, self.timeout)
            ack = self.client.send(item.payload)
        except MLLPClientError as e:
            self._drop_client()
            row.verdict, row.failure = "no response", str(e)
            return row
        self._judge(row, header, ack)
        return row

    def _drop_client(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def _judge(self, row: Row, header: dict[str, str], ack: bytes) -> None:
        try:
            summary = summarize_ack(ack)
        except ValueError:
            row.verdict, row.failure = "bad ACK", "the response has no MSA segment"
            return
        row.ack = summary.code
        errors = ack_errors(ack)
        if errors:
            row.err_location, row.err_code, row.err_text = errors[0]
        after = self.broker.worklist()
        change = diff(self.worklist, after)
        self.worklist = after
        row.created, row.changed, row.removed = change.created, change.changed, change.removed
        row.entries = change.total
        key = (header.get("sending_application", ""), header.get("sending_facility", ""))
        identity = (*key, row.msh10)
        resend = identity in self.first_acks and self.first_acks[identity] == ack
        self.first_acks.setdefault(identity, ack)
        msa2 = summary.control_id
        if ack in COMMIT_BLOCKS:  # MSH-15 asked for no HL7 accept ACK: MLLP R2 commit block
            msa2 = row.msh10
            row.note = (row.note + "; " if row.note else "") + "MLLP commit block, no HL7 ACK"
        row.verdict, row.failure = verdict(row, change, msa2, resend)


def _order_controls(payload: bytes) -> tuple[str, ...]:
    """ORC-1 of every ORC segment (read as Latin-1, which never fails)."""
    text = payload.decode("latin-1").replace("\n", "\r")
    sep = text[3:4] if text.startswith("MSH") else "|"
    return tuple(
        fields[1].strip()
        for segment in text.split("\r")
        if segment.startswith("ORC") and len(fields := segment.split(sep)) > 1
    )


def verdict(row: Row, change: Diff, msa2: str, resend: bool) -> tuple[str, str]:
    """(verdict, failure reason or "") for one acknowledged message."""
    located = bool(row.err_location)
    if row.msh10 and msa2 != row.msh10:
        return "bad ACK", f"MSA-2 {msa2!r} does not echo MSH-10 {row.msh10!r}"
    if row.ack in _REFUSALS and change.any:
        return "refused but changed", f"{row.ack} yet the worklist changed"
    if row.msh9 not in ORDER_TYPES:
        return ("accepted" if row.ack == "AA" else "refused"), ""
    if change.any:  # an AA/CA with an ERR: its warning (ERR-4 W), e.g. a value cut to fit
        return ("applied with warning" if located and row.ack in _ACCEPTS else "applied"), ""
    if row.ack in _REFUSALS and located:
        return "refused (justified)", ""
    if resend:
        return "resend (same ACK)", ""
    if row.ack == "AA" and row.order_controls and set(row.order_controls) <= STATUS_ONLY_CONTROLS:
        return "accepted (cancel recorded for an order not on the worklist)", ""
    if row.ack in _REFUSALS:
        return "refused without location", f"{row.ack} without an ERR location"
    return "accepted, no change", f"{row.ack or 'no code'} but no worklist entry changed"


def run(corpus: Path, report: Path, timeout: float) -> int:
    """The whole run; returns the exit status."""
    quiet_pynetdicom()
    report.mkdir(parents=True, exist_ok=True)
    items = corpus_messages(corpus)
    rows: list[Row] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mwl-conformance-") as tmp:
        try:
            with BrokerProcess(Path(tmp) / "data", report / "broker.log") as broker:
                session = Run(broker, timeout)
                for item in items:
                    rows.append(session.send(item))
                    code = broker.exit_code()
                    if code is not None:
                        problems.append(f"the broker exited with status {code} after {item.file}")
                        break
                session._drop_client()
                code = broker.stop()
                if code != 0 and not problems:
                    problems.append(f"the broker stopped with exit status {code}")
        except BrokerExited as e:
            problems.append(str(e))
    if len(rows) < len(items):
        problems.append(f"{len(items) - len(rows)} messages were not sent")
    problems += [f"{r.file} #{r.index}: {r.failure}" for r in rows if r.failure]
    records = [asdict(r) for r in rows]
    write_reports(report, records, problems, corpus)
    print(render_markdown(records))
    print("\n".join(summary_lines(records, problems)))
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report", type=Path, required=True, help="directory for the report")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="HL7 corpus folder")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait per ACK")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"conformance: the HL7 corpus is missing: {args.corpus} is not a directory",
              file=sys.stderr)  # fmt: skip
        return 2
    return run(args.corpus.resolve(), args.report, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
