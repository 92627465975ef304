"""Conformance with DCMTK's example worklist and Orthanc's answers to DCMTK's example queries.

The public corpus (``dicom/`` of ``tests/corpus.py``, read in place, see its SOURCES.md;
these tests run in ``make conformance``):

- ``dcmtk/wlistdb/wklist1..10.dump``: DCMTK's example worklist items (dump2dcm text).
- ``orthanc-tests/dcmtk-3.6.0-copy/wklist4..6.dump``: the same items as Orthanc's
  tests keep them, from DCMTK 3.6.0, with the birth date 17320431 that current
  DCMTK corrected. Orthanc's expected answers were made with these, so items 4-6
  are taken from here, the others from DCMTK (identical to Orthanc's copies).
- ``dcmtk/wlistqry/wlistqry0..12.dump``: DCMTK's example queries.
- ``orthanc-tests/expected-answers/all-N.json``: what Orthanc's worklist tests
  (``test_all``) expect for query N against all ten items: one list per answer
  of the top-level lines of ``findscu -v``'s dump of it.

The items are converted with ``dump2dcm`` into a wlmscpfs-style folder
(``OFFIS/*.wl`` and a ``lockfile``; half as Part-10 files, half as bare
implicit-VR datasets) and loaded with ``mwl-broker import`` (a separate
process) into a running broker, real embedded redis-server included. Each
query then goes through a pynetdicom SCU and through DCMTK ``findscu -W``.

How the answers are compared. Orthanc's test (``Tests/Tests.py`` of
orthanc-tests, ``RunQuery``/``CompareAnswers``) keeps only the top-level lines
of each answer, drops ``# comments`` and NUL bytes, ignores Specific Character
Set (0008,0005) and (0040,0004)/(0040,0005)/(0040,0020), then checks that the
number of answers is right and that *one* expected answer is among the actual
ones. Here the same lines are compared as (tag, VR, value) and the answers as
multisets: every expected answer must come back, as often as expected, and
nothing else. Two things are normalised on top of Orthanc's own normalisation,
both encoding details rather than content:

- trailing padding of values (PS3.5 6.2: a value is padded to even length with
  a space, UI with NUL; the padding is not part of the value). Orthanc's
  oracle shows DCMTK 3.6.x's display of the padding, which differs between
  DCMTK versions (NUL shown raw, or as a space) and from pydicom's decoded values;
- the sequence header line ("Sequence with explicit length #=1") and the
  sequence delimitation line: how DCMTK describes the encoded length of a
  sequence (PS3.5 7.5), not what it holds.

Orthanc's oracle says nothing about the items of sequences. Here the answers'
Scheduled Procedure Step items are checked too: an item query returns exactly
the requested keys (PS3.4 C.4.1.1.3.2), and where the whole item is returned
it equals the imported file's item, except (0040,0020): the broker keeps the
SPS Status itself and reports SCHEDULED for a file that had none (Orthanc ignores
that attribute for the same reason).

Matching gives Orthanc's answers for all thirteen queries. One answer *content*
differs on purpose (``EMPTY_NOT_ABSENT``): query 0 asks for Requested Procedure
Code Sequence (0032,1064), which no item has. Orthanc leaves the attribute out;
the broker returns it with no item (``broker.dicom.response``). PS3.4 K.2.2.1.2
has an SCP return keys according to their data element type (PS3.5 7.4): a
Type 2 key must come back, zero-length when its value is unknown, while a
Type 1C or 3 key may be left out. A zero-length value says the same as an
absent one ("no value"), and returning every requested key keeps one rule
for all of them (dcm4chee made the same choice: dcm4che issue #1123). So the
expected answers of query 0 get that attribute added, and the test checks it
really is empty.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom import AE

from broker.app import Broker
from broker.dicom.status import Status
from tests.broker_runner import REPO, broker_settings, running_broker
from tests.conftest import require_tool
from tests.corpus import corpus_path, corpus_root
from tests.scu import ModalityWorklistInformationFind, identifier_of

pytestmark = [pytest.mark.interop, pytest.mark.corpus]

CORPUS = corpus_root() / "dicom"
DCMTK_ITEMS = CORPUS / "dcmtk" / "wlistdb"
ORTHANC_ITEMS = CORPUS / "orthanc-tests" / "dcmtk-3.6.0-copy"
QUERIES = CORPUS / "dcmtk" / "wlistqry"
EXPECTED = CORPUS / "orthanc-tests" / "expected-answers"
SEQUENCES = CORPUS / "orthanc-tests" / "sequences"

# Orthanc's test_all ignores these tags (Tests.py, RunQuery's ignoreTags).
IGNORED_TAGS = frozenset({"0008,0005", "0040,0004", "0040,0005", "0040,0020"})
SEQUENCE_DELIMITATION = "fffe,e0dd"
SEQUENCE = "<sequence>"
SPS_STATUS = "0040,0020"
CALLING = "CONFORMANCE"

# Requested keys the items lack: Orthanc omits them, the broker returns them with no
# value (see the module docstring). Query number -> (tag, VR) added to every expected answer.
EMPTY_NOT_ABSENT = {0: ("0032,1064", "SQ")}

Line = tuple[str, str, str]  # tag "gggg,eeee" (lower case), VR, value without padding
Answer = tuple[Line, ...]

_DUMP_LINE = re.compile(
    r"^\((?P<tag>[0-9A-Fa-f]{4},[0-9A-Fa-f]{4})\) (?P<vr>[A-Za-z?]{2}) ?(?P<rest>.*)$"
)


def _unpadded(value: str) -> str:
    return value.rstrip(" \x00")


def dump_line(line: str) -> Line | None:
    """One top-level line of a dcmdump-style listing, normalised; None if ignored."""
    m = _DUMP_LINE.match(line.replace("\x00", ""))
    assert m is not None, f"not a dcmdump line: {line!r}"
    tag, vr, rest = m["tag"].lower(), m["vr"], m["rest"]
    if tag in IGNORED_TAGS or tag == SEQUENCE_DELIMITATION:
        return None
    if vr == "SQ":
        return tag, vr, SEQUENCE
    if rest.startswith("["):
        return tag, vr, _unpadded(rest[1 : rest.rindex("]")])
    rest = re.sub(r"\s*#.*", "", rest)
    return tag, vr, "" if rest == "(no value available)" else rest.strip()


def dataset_lines(ds: Dataset, ignored: frozenset[str] = IGNORED_TAGS) -> Answer:
    """A dataset's top-level elements in the form of :func:`dump_line`."""
    lines = []
    for elem in ds:
        tag = f"{elem.tag.group:04x},{elem.tag.element:04x}"
        if tag in ignored:
            continue
        value = elem.value
        if elem.VR == "SQ":
            text = SEQUENCE
        elif value is None or value == "":
            text = ""
        elif isinstance(value, MultiValue):
            text = "\\".join(str(v) for v in value)
        else:
            text = str(value)
        lines.append((tag, str(elem.VR), _unpadded(text)))
    return tuple(lines)


def expected_answers(query: int) -> Counter[Answer]:
    raw = json.loads((EXPECTED / f"all-{query}.json").read_text())
    answers = []
    for answer in raw:
        lines = [x for x in map(dump_line, answer) if x is not None]
        if query in EMPTY_NOT_ABSENT:
            tag, vr = EMPTY_NOT_ABSENT[query]
            lines.append((tag, vr, SEQUENCE if vr == "SQ" else ""))
        answers.append(tuple(sorted(lines)))
    return Counter(answers)


# -- the worklist folder and the queries, converted with dump2dcm --------------


def dump2dcm(source: Path, target: Path, *options: str) -> Path:
    exe = require_tool("dump2dcm")
    result = subprocess.run(
        [exe, *options, str(source), str(target)], capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return target


def item_source(n: int) -> Path:
    folder = ORTHANC_ITEMS if n in (4, 5, 6) else DCMTK_ITEMS
    return folder / f"wklist{n}.dump"


def build_worklist_folder(root: Path) -> Path:
    """DCMTK's items as wlmscpfs keeps them: ``root/OFFIS/*.wl`` and a lockfile.

    Items 1-5 are Part-10 files (preamble, meta, explicit VR, as Orthanc's tests
    write them), 6-10 bare datasets in implicit VR: both are found in the wild.
    """
    folder = root / "OFFIS"
    folder.mkdir(parents=True)
    (folder / "lockfile").touch()
    for n in range(1, 11):
        options = ("--write-xfer-little",) if n <= 5 else ("-F", "--write-xfer-implicit")
        dump2dcm(item_source(n), folder / f"wklist{n}.wl", *options)
    return root


def cli_import(broker: Broker, folder: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``mwl-broker import`` in its own process, next to the running broker."""
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", "import", *options,
         "--data-dir", str(broker.settings.data_dir), str(folder)],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip


@dataclass
class Setup:
    broker: Broker
    worklist: Path
    queries: Path
    import_output: str


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    corpus_path("dicom")  # fails the test when the corpus is missing
    root = tmp_path_factory.mktemp("conformance")
    worklist = build_worklist_folder(root / "worklists")
    queries = root / "queries"
    queries.mkdir()
    for n in range(13):
        dump2dcm(QUERIES / f"wlistqry{n}.dump", queries / f"wlistqry{n}.dcm", "--write-xfer-little")
    with running_broker(broker_settings(root / "data")) as broker:
        imported = cli_import(broker, worklist)
        assert imported.returncode == 0, imported.stdout + imported.stderr
        yield Setup(broker, worklist, queries, imported.stdout)


# -- the two SCUs -------------------------------------------------------------


def pynetdicom_find(broker: Broker, query: Dataset) -> list[Dataset]:
    assert broker.endpoints is not None
    ae = AE(ae_title=CALLING)
    ae.add_requested_context(ModalityWorklistInformationFind)
    assoc = ae.associate(
        "127.0.0.1", broker.endpoints.dicom_port, ae_title=broker.settings.ae_title
    )
    assert assoc.is_established
    answers = []
    try:
        for status, identifier in assoc.send_c_find(query, ModalityWorklistInformationFind):
            assert status is not None, "no response from the broker"
            if status.Status in (Status.PENDING, Status.PENDING_WARNING):
                answers.append(identifier_of(identifier))
            else:
                assert status.Status == Status.SUCCESS, f"C-FIND failed: 0x{status.Status:04X}"
    finally:
        assoc.release()
    return answers


def findscu_answers(broker: Broker, query_file: Path) -> list[Answer]:
    """DCMTK ``findscu -W -v`` and its log parsed as Orthanc's tests parse it."""
    exe = require_tool("findscu")
    assert broker.endpoints is not None
    result = subprocess.run(
        [exe, "-v", "-W", "-aet", CALLING, "-aec", broker.settings.ae_title,
         "127.0.0.1", str(broker.endpoints.dicom_port), str(query_file)],
        capture_output=True, timeout=60, check=False, env={**os.environ, "TCP_NODELAY": "1"},
    )  # fmt: skip
    log = result.stderr.decode("utf-8", errors="replace").splitlines()
    assert result.returncode == 0, "\n".join(log)
    assert not [line for line in log if line.startswith("E:")], "\n".join(log)
    answers: list[Answer] = []
    current: list[Line] = []
    in_request = True  # the request identifier comes first, up to the first "---"
    for line in log:
        body = line[3:] if line[:3] in ("I: ", "W: ") else None
        if body is None:
            continue
        if body.startswith("---"):
            if not in_request and current:
                answers.append(tuple(current))
            in_request, current = False, []
        elif body.startswith("(") and not in_request:  # top level only: nested lines are indented
            parsed = dump_line(body)
            if parsed is not None:
                current.append(parsed)
    if current:
        answers.append(tuple(current))
    return answers


# -- the conformance test -----------------------------------------------------


def test_import_reports_every_item(setup: Setup) -> None:
    lines = setup.import_output.splitlines()
    assert sorted(line.split(":")[0] for line in lines if ": imported: " in line) == sorted(
        f"OFFIS/wklist{n}.wl" for n in range(1, 11)
    )
    assert "lockfile" not in setup.import_output
    assert lines[-1].startswith("10 imported ")
    assert setup.broker.store is not None and setup.broker.store.count() == 10
    again = cli_import(setup.broker, setup.worklist)  # the same folder: updated in place
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.splitlines()[-1].startswith("10 updated ")
    assert setup.broker.store.count() == 10


@pytest.mark.parametrize("n", range(13))
def test_pynetdicom_answers_equal_orthanc(setup: Setup, n: int) -> None:
    query = pydicom.dcmread(setup.queries / f"wlistqry{n}.dcm")
    answers = pynetdicom_find(setup.broker, query)
    assert Counter(dataset_lines(a) for a in answers) == expected_answers(n)
    check_sps_items(query, answers)
    if n in EMPTY_NOT_ABSENT:
        tag = int(EMPTY_NOT_ABSENT[n][0].replace(",", ""), 16)
        assert all(a[tag].is_empty for a in answers)


@pytest.mark.parametrize("n", range(13))
def test_findscu_answers_equal_orthanc(setup: Setup, n: int) -> None:
    answers = findscu_answers(setup.broker, setup.queries / f"wlistqry{n}.dcm")
    assert Counter(answers) == expected_answers(n)


def source_sps_items() -> dict[str, Answer]:
    """Each corpus item's SPS item lines, by Accession Number (read from the dumps)."""
    items = {}
    for n in range(1, 11):
        lines = item_source(n).read_text().splitlines()
        start = lines.index("(fffe,e000) -") + 1
        end = lines.index("(fffe,e00d) -")
        accession = lines[0].split()[-1]
        parsed = (dump_line(_as_dump(line)) for line in lines[start:end])
        items[accession] = tuple(sorted(x for x in parsed if x is not None))
    return items


def _as_dump(line: str) -> str:
    """DCMTK's example files write ``(gggg,eeee) VR  value``; bracket the value."""
    head, _, value = line.partition("  ")
    return f"{head} [{value}]" if value else f"{head} (no value available)"


def check_sps_items(query: Dataset, answers: list[Dataset]) -> None:
    """The answers' SPS items: the requested keys, or the whole item (PS3.4 C.4.1.1.3.2)."""
    if "ScheduledProcedureStepSequence" not in query:
        assert not any("ScheduledProcedureStepSequence" in a for a in answers)
        return
    (query_item,) = query.ScheduledProcedureStepSequence
    keys = sorted(f"{e.tag.group:04x},{e.tag.element:04x}" for e in query_item)
    sources = source_sps_items()
    for answer in answers:
        (item,) = answer.ScheduledProcedureStepSequence
        if keys:
            assert sorted(f"{e.tag.group:04x},{e.tag.element:04x}" for e in item) == keys
        if "AccessionNumber" in answer and (not keys or len(keys) == 12):
            lines = dataset_lines(item, frozenset({SPS_STATUS}))
            assert tuple(sorted(lines)) == sources[answer.AccessionNumber]


# -- Orthanc's other worklist tests: sequences, private keys, character sets ----
# Each runs on its own broker, as Orthanc's tests clear the database between them;
# Orthanc checks only the number of answers (plus the name's text for issue 49).

ORTHANC = CORPUS / "orthanc-tests"


def answer_counts(broker: Broker, query_file: Path) -> tuple[int, int]:
    """Answers through pynetdicom and through findscu."""
    via_pynetdicom = pynetdicom_find(broker, pydicom.dcmread(query_file))
    return len(via_pynetdicom), len(findscu_answers(broker, query_file))


@contextmanager
def broker_with(root: Path, *items: Path, **settings: Any) -> Iterator[Broker]:
    """A broker whose worklist is ``items`` (dumps converted, .wl files copied), imported."""
    folder = root / "worklists"
    folder.mkdir(parents=True)
    for item in items:
        target = folder / f"{item.stem}.wl"
        if item.suffix == ".dump":
            dump2dcm(item, target, "--write-xfer-little")
        else:
            shutil.copyfile(item, target)
    with running_broker(broker_settings(root / "data", **settings)) as broker:
        imported = cli_import(broker, folder)
        assert imported.returncode == 0, imported.stdout + imported.stderr
        yield broker


def query_file(root: Path, dump: Path) -> Path:
    return dump2dcm(dump, root / f"{dump.stem}.dcm", "--write-xfer-little")


def test_orthanc_sequences_queries(tmp_path: Path) -> None:
    """Orthanc's test_vet: a modality's query with group lengths, empty sequences and
    unknown tags (PS3.4 C.2.2.2.6, C.4.1.1.3: group lengths are not keys)."""
    items = [
        SEQUENCES / "worklists" / f"orig.{n}.dump" for n in ("7705", "7814", "7814.without.seq")
    ]
    with broker_with(tmp_path, *items) as broker:
        for name in ("7814.without.length", "7814.without.seq", "orig.7814"):
            query = query_file(tmp_path, SEQUENCES / "queries" / f"{name}.dump")
            assert answer_counts(broker, query) == (2, 2), name


def test_orthanc_station_filter(tmp_path: Path) -> None:
    """Orthanc's station tests: no station key matches both stations, a station key one."""
    items = [SEQUENCES / "worklists" / n for n in ("orig.7814.dump", "orig.7814.other.station.wl")]
    with broker_with(tmp_path, *items) as broker:
        any_station = query_file(tmp_path, SEQUENCES / "queries" / "7814.without.station.aet.dump")
        assert answer_counts(broker, any_station) == (2, 2)
        station = query_file(tmp_path, SEQUENCES / "queries" / "orig.7814.dump")
        assert answer_counts(broker, station) == (1, 1)


def test_orthanc_private_key(tmp_path: Path) -> None:
    """Orthanc's test_private_creator: a private attribute as a matching key."""
    with broker_with(tmp_path, ORTHANC / "private-creator" / "private-creator-wl.dump") as broker:
        query = query_file(tmp_path, ORTHANC / "private-creator" / "private-creator-query.dump")
        assert answer_counts(broker, query) == (1, 1)


@pytest.mark.parametrize("charset", ["ISO_IR 192", "ISO_IR 100"])
def test_orthanc_issue_49_latin1_name(tmp_path: Path, charset: str) -> None:
    """Orthanc's issue 49: a Latin-1 worklist file keeps its É through import and answer.

    The answer's character set is the broker's ``dicom_character_set`` (PS3.5 6.1),
    as Orthanc's is its default encoding.
    """
    item = ORTHANC / "encodings" / "issue49-latin1.wl"
    with broker_with(tmp_path, item, dicom_character_set=charset) as broker:
        query = query_file(tmp_path, ORTHANC / "encodings" / "issue49-latin1.query.dump")
        (answer,) = pynetdicom_find(broker, pydicom.dcmread(query))
        assert answer.SpecificCharacterSet == charset
        assert str(answer.PatientName) == "VANILLÉ^LAURA^^^Mme"
        (dcmtk,) = findscu_answers_raw(broker, query)
        assert dcmtk[("0010,0010", "PN")] == "VANILLÉ^LAURA^^^Mme".encode(
            "utf-8" if charset == "ISO_IR 192" else "latin-1"
        )


def findscu_answers_raw(broker: Broker, query: Path) -> list[dict[tuple[str, str], bytes]]:
    """findscu's answers with each value's bytes as received (DCMTK prints them raw)."""
    exe = require_tool("findscu")
    assert broker.endpoints is not None
    result = subprocess.run(
        [exe, "-v", "-W", "-aet", CALLING, "-aec", broker.settings.ae_title,
         "127.0.0.1", str(broker.endpoints.dicom_port), str(query)],
        capture_output=True, timeout=60, check=False, env={**os.environ, "TCP_NODELAY": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    answers: list[dict[tuple[str, str], bytes]] = []
    for block in result.stderr.split(b"Find Response: ")[1:]:
        values = {}
        for m in re.finditer(rb"^I: \(([0-9a-f]{4},[0-9a-f]{4})\) (\w\w) \[(.*)\]", block, re.M):
            values[(m[1].decode(), m[2].decode())] = m[3].rstrip(b" \x00")
        answers.append(values)
    return answers
