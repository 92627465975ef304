"""The project's own HL7 test messages: a varied set written here, so that the tests that run
"over every message" need nothing outside the repository (the public corpus has its own
tests, marked ``corpus``: ``make conformance``).

Orders (ORM^O01 with each order-control combination, OMI^O23 with one to three IPC,
OMG^O19, two groups, parent/child), patients (ADT A01 … A47), HL7 versions 2.3 to 2.5.1,
ASCII, ISO 8859-1, UTF-8 (also mislabelled 8859/1) and ISO-2022-JP, escape sequences,
repeated names with alphabetic and ideographic groups, and messages the broker refuses
(missing PID-3, a control code with no row, an accession too long, an unknown type).
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"

_ORDER_CONTROLS = (
    ("NW", "SC"), ("XO", "SC"), ("SC", "IP"), ("SC", "CM"), ("XO", "CM"), ("CA", "CA"),
    ("OC", "CA"), ("DC", "DC"), ("HD", "HD"), ("RL", "SC"), ("SR", "SC"), ("NW", "ZZ"),
)  # fmt: skip
_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1")
_NAMES = (
    ("ASCII", "ascii", "Doe^John^Q^^Mr."),
    ("8859/1", "latin-1", "Müller^Jürgen^^^Dr."),
    ("UNICODE UTF-8", "utf-8", "Øvergård^Zoë^Åsa"),
    ("8859/1", "utf-8", "Ça^Ève"),  # UTF-8 bytes labelled 8859/1: read as UTF-8, warned
)


def _msh(mtype: str, control_id: str, version: str, charset: str) -> str:
    return (
        f"MSH|^~\\&|RIS|RADIOLOGY|MWL_BROKER|HOSPITAL|20261125083000||{mtype}|{control_id}"
        f"|P|{version}||||||{charset}"
    )


def _orm(n: int, control: str, status: str, version: str, name: str, charset: str) -> list[str]:
    acc, plc = f"ACC-{n}", f"PLC-{n}^RIS"
    return [
        _msh("ORM^O01", f"ORM-{n}", version, charset),
        f"PID|||PAT-{n}^^^HOSP||{name}||19650412|M|||Hauptstr. 5^^Koeln^^50667^DE",
        "PV1||O|RAD^ROOM1^1|||||1234^Schmidt^Anna^^^Dr.|||||||||||V-5001",
        f"ORC|{control}|{plc}|FIL-{n}^RIS||{status}||1^once^^20261126093000^^R||20261125083000"
        "|||1234^Schmidt^Anna^^^Dr.",
        f"OBR|1|{plc}|FIL-{n}^RIS|CTHEAD^CT head^LOCAL^CTHEAD-P1^Head protocol^LOCAL"
        f"||||||||||||1234^Schmidt^Anna^^^Dr.||{acc}|RP-{n}|SPS-{n}||||CT|||"
        "1^once^^20261126093000^^R|||||||4711&Weber&Lena",
        f"ZDS|1.2.826.0.1.3680043.10.543.{n}^RIS^Application^DICOM",
    ]


def _omi(n: int, steps: int, version: str, name: str, charset: str) -> list[str]:
    plc = f"PLC-{n}^RIS"
    ipcs = [
        f"IPC|ACC-{n}|RP-{n}|1.2.826.0.1.3680043.10.543.{n}|SPS-{n}{chr(65 + i)}|MR"
        f"|MRKNEE-T{i}^Knee T{i}^LOCAL|MR ROOM {i}|RAD-MR|MR{i}"
        for i in range(steps)
    ]
    return [
        _msh("OMI^O23^OMI_O23", f"OMI-{n}", version, charset),
        f"PID|||PAT-{n}^^^HOSP||{name}||19801224|F",
        "PV1||I|WARD3^12^1",
        f"ORC|NW|{plc}|FIL-{n}^RIS||SC||||20261125090000",
        "TQ1|||||||20261126101500",
        f"OBR|1|{plc}|FIL-{n}^RIS|MRKNEE^MR knee^LOCAL||||||||||||5678^Berg^Ola^^^Dr.",
        *ipcs,
    ]


def _adt(n: int, event: str, version: str, name: str, charset: str) -> list[str]:
    segments = [
        _msh(f"ADT^{event}", f"ADT-{n}", version, charset),
        f"EVN|{event}|20261125083000",
        f"PID|||PAT-{n}^^^HOSP||{name}||19700101|F",
        "PV1||I|WARD1^1^1",
    ]
    if event in ("A40", "A47"):
        segments.append(f"MRG|OLD-{n}^^^HOSP")
    return segments


def _encode(segments: list[str], encoding: str) -> bytes:
    return "\r".join(segments).encode(encoding)


def own_messages() -> list[tuple[str, bytes]]:
    """Every own test message, named: the files of tests/data, then the generated ones."""
    found = [(path.name, path.read_bytes()) for path in sorted(DATA.glob("*.hl7"))]
    n = 5000
    for i, (control, status) in enumerate(_ORDER_CONTROLS):
        charset, encoding, name = _NAMES[i % len(_NAMES)]
        version = _VERSIONS[i % len(_VERSIONS)]
        n += 1
        found.append((f"orm-{control}-{status}", _encode(
            _orm(n, control, status, version, name, charset), encoding)))  # fmt: skip
    for charset, encoding, name in _NAMES:
        for version in _VERSIONS:
            n += 1
            segments = _orm(n, "NW", "SC", version, name, charset)
            found.append((f"orm-{version}-{charset}", _encode(segments, encoding)))
    for steps in (1, 2, 3):
        for charset, encoding, name in _NAMES[:3]:
            n += 1
            found.append((f"omi-{steps}-{charset}", _encode(
                _omi(n, steps, "2.5.1", name, charset), encoding)))  # fmt: skip
    for event in ("A01", "A04", "A08", "A28", "A31", "A40", "A47", "A10", "A02", "A03"):
        n += 1
        found.append((f"adt-{event}", _encode(_adt(n, event, "2.5", "Roe^Jane", ""), "ascii")))
    found += _special_messages(n)
    return found


def _special_messages(n: int) -> list[tuple[str, bytes]]:
    """Two groups, parent/child, escapes, Japanese names, and refusals."""
    two = _orm(n + 1, "NW", "SC", "2.5", "Doe^John", "")
    second = _orm(n + 2, "NW", "SC", "2.5", "Doe^John", "")
    escaped = _orm(n + 3, "NW", "SC", "2.5", "O\\T\\Brien^Mary\\S\\Ann", "")
    escaped[4] = escaped[4].replace("CT head", "CT head\\F\\neck\\.br\\\\X41\\")
    missing_pid3 = _orm(n + 4, "NW", "SC", "2.3.1", "Doe^John", "")
    missing_pid3[1] = "PID|||||Doe^John||19650412|M"
    too_long = _orm(n + 5, "NW", "SC", "2.5.1", "Doe^John", "")
    too_long[4] = too_long[4].replace(f"ACC-{n + 5}", "A" * 17)
    parent = _orm(n + 6, "NW", "SC", "2.5", "Doe^John", "")
    child = _orm(n + 7, "CH", "SC", "2.5", "Doe^John", "")
    unknown = [_msh("ORU^R01", f"ORU-{n + 8}", "2.5", ""), "PID|||PAT-1^^^HOSP||Doe^John"]
    japanese = _orm(n + 9, "NW", "SC", "2.5", "", "~ISO IR87")
    japanese[1] = (
        f"PID|||PAT-{n + 9}^^^HOSP||Yamada^Taro^^^^^A~\u5c71\u7530^\u592a\u90ce^^^^^I||19650412|M"
    )
    omg = _orm(n + 10, "NW", "SC", "2.5.1", "Doe^John", "UNICODE UTF-8")
    omg[0] = omg[0].replace("ORM^O01", "OMG^O19^OMG_O19")
    return [
        ("orm-two-groups", _encode(two + second[3:], "ascii")),
        ("orm-parent-child", _encode(parent + child[3:], "ascii")),
        ("orm-escapes", _encode(escaped, "ascii")),
        ("orm-missing-pid3", _encode(missing_pid3, "ascii")),
        ("orm-accession-too-long", _encode(too_long, "ascii")),
        ("oru-unsupported", _encode(unknown, "ascii")),
        ("orm-iso2022jp", _encode(japanese, "iso2022_jp")),
        ("omg-o19", _encode(omg, "utf-8")),
    ]
