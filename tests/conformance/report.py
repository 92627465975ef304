"""Reading ERR segments of an ACK, and writing the conformance report (Markdown + JSON)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from broker.hl7.paths import unescape

Record = dict[str, Any]


def ack_errors(ack: bytes) -> list[tuple[str, str, str]]:
    """(location, code, text) per ERR segment (HL7 v2.5.1 §2.14.5).

    From v2.5 ERR-2 (ERL: segment^sequence^field^repetition^component^sub),
    ERR-3.1 and ERR-8 (else ERR-3.2); for older versions ERR-1 (ELD:
    segment^sequence^field^code&text).
    """
    text = ack.decode("utf-8", errors="replace")
    segments = [s for s in text.replace("\n", "\r").split("\r") if s]
    if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 5:
        return []
    sep = segments[0][3]
    declared = segments[0][4:].split(sep, 1)[0][:4]  # MSH-2 may have fewer than four
    enc = declared + "^~\\&"[len(declared) :]
    comp, esc, sub = enc[0], enc[2], enc[3]
    separators = "\r" + sep + enc[1] + comp + sub
    found = []
    for segment in segments:
        fields = segment.split(sep)
        if fields[0] != "ERR":
            continue
        field = (fields + [""] * 9)[:9]
        erl = field[2].split(comp)
        if erl[0]:
            condition = [*field[3].split(comp), ""]
            message = field[8] or condition[1]
            found.append((_location(erl), condition[0], unescape(message, esc, separators)))
            continue
        eld = (field[1].split(comp) + [""] * 4)[:4]
        code, _, label = eld[3].partition(sub)
        found.append((_location(eld[:3]), code, unescape(label.split(sub)[0], esc, separators)))
    return found


def _location(parts: list[str]) -> str:
    """``SEG-F.C`` from ERL/ELD components; "" when there is no segment."""
    parts = (parts + [""] * 6)[:6]
    segment, field, component = parts[0], parts[2], parts[4]
    if not segment:
        return ""
    text = segment + (f"-{field}" if field else "")
    return text + (f".{component}" if field and component else "")


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_markdown(records: list[Record]) -> str:
    """The per-message table."""
    head = (
        "| file | # | MSH-9 | MSH-10 | ACK | ERR location | code | ERR text "
        "| +/~/- | entries | verdict |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in records:
        change = f"+{r['created']}/~{r['changed']}/-{r['removed']}"
        verdict = r["verdict"] + (f" **FAIL: {r['failure']}**" if r["failure"] else "")
        if r["note"]:
            verdict += f" ({r['note']})"
        text = r["err_text"] if len(r["err_text"]) <= 90 else r["err_text"][:87] + "..."
        cells = [
            r["file"], r["index"], r["msh9"], r["msh10"][:24], r["ack"], r["err_location"],
            r["err_code"], text, change, r["entries"], verdict,
        ]  # fmt: skip
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def summary_lines(records: list[Record], problems: list[str]) -> list[str]:
    """Counts by ACK code and verdict, then every problem."""
    files = len({r["file"] for r in records})
    acks = Counter(r["ack"] or "-" for r in records)
    verdicts = Counter(r["verdict"] for r in records)
    lines = [
        "",
        f"conformance: {len(records)} messages from {files} files",
        "  ACK codes: " + ", ".join(f"{k} {v}" for k, v in sorted(acks.items())),
        "  verdicts:  " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())),
    ]
    if problems:
        lines.append(f"FAILED: {len(problems)} problem(s)")
        lines += [f"  - {p}" for p in problems]
    else:
        lines.append("PASSED: every message answered, every order applied or justly refused")
    return lines


def write_reports(
    directory: Path, records: list[Record], problems: list[str], corpus: Path
) -> None:
    """``report.json`` (everything) and ``report.md`` (table and summary)."""
    document = {"corpus": str(corpus), "problems": problems, "messages": records}
    (directory / "report.json").write_text(
        json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    markdown = "# HL7 corpus conformance\n\n" + render_markdown(records) + "\n"
    markdown += "\n".join(summary_lines(records, problems)) + "\n"
    (directory / "report.md").write_text(markdown, encoding="utf-8")
