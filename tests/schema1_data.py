"""A Redis as the broker left it before pseudonyms (key schema 1), for the migration tests.

``tests/data/redis_schema1.json`` is a dump of the Redis of a real broker of that
release (commit c62430c) after the flows below: orders (ORM^O01, OMI^O23 with two
steps, a cancel, a cancel before its order), ADT A08, two A40 merges in a row (an
alias chain) and an A47, MPPS N-CREATE / N-SET. The identifiers are canaries
(:data:`CANARIES`), so a test can look for them in every key name afterwards.

It was made by running this file as a script with that release's ``broker`` package
first on the path (the file imports nothing from ``tests``)::

    git worktree add /tmp/schema1 c62430c
    PYTHONPATH=/tmp/schema1 .venv/bin/python tests/schema1_data.py tests/data/redis_schema1.json

:func:`load` writes such a dump into a Redis: every key with its type, value, stream
ids and remaining TTL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, cast

import redis

FIXTURE = Path(__file__).resolve().parent / "data" / "redis_schema1.json"

PATIENT = "CNRYPID:4711"  # a colon: schema 1 escaped it in key names
OLDER, OLD = "CNRYOLDER01", "CNRYOLD0001"  # OLDER merged into OLD, then OLD into PATIENT
CHANGED, NEW_ID = "CNRYPID0042", "CNRYNEW0042"  # A47: CHANGED becomes NEW_ID
ACCESSIONS = {  # accession -> the Patient ID its order was sent with
    "CNRYACC4711": PATIENT,
    "CNRYACC4712": OLD,
    "CNRYACC4713": OLDER,
    "CNRYACC0042": CHANGED,  # OMI, two steps
}
CANCELED = "CNRYACC4715"  # ordered, then canceled
CANCEL_FIRST = "CNRYACC4714"  # canceled before its order arrived
STUDY = "1.2.826.0.1.3680043.10.543.424242"
CANARIES = ("CNRY", "424242")


def _msh(mtype: str, control_id: str, sent: str = "20261125083000") -> str:
    return (
        f"MSH|^~\\&|RIS|RADIOLOGY|MWL_BROKER|HOSPITAL|{sent}||{mtype}|{control_id}"
        "|P|2.5.1||||||UNICODE UTF-8"
    )


def orm(n: int, control: str, pid: str, acc: str, sent: str = "20261125083000") -> bytes:
    study = STUDY if acc == "CNRYACC4711" else f"1.2.826.0.1.3680043.10.543.{n}"
    return "\r".join([
        _msh("ORM^O01", f"ORM-{n}", sent),
        f"PID|||{pid}^^^HOSP||Canary^Zzname^Q||19010203|M",
        "PV1||O|RAD^ROOM1^1|||||1234^Schmidt^Anna^^^Dr.",
        f"ORC|{control}|PLC-{acc}^RIS|FIL-{acc}^RIS||SC||1^once^^20261126093000^^R",
        f"OBR|1|PLC-{acc}^RIS|FIL-{acc}^RIS|CTHEAD^CT head^LOCAL||||||||||||||{acc}"
        f"|RP-{n}|SPS-{n}||||CT|||1^once^^20261126093000^^R",
        f"ZDS|{study}^RIS^Application^DICOM",
    ]).encode()  # fmt: skip


def omi(n: int, pid: str, acc: str) -> bytes:
    ipcs = [
        f"IPC|{acc}|RP-{n}|1.2.826.0.1.3680043.10.543.{n}|SPS-{n}{step}|MR"
        f"|MRKNEE-{step}^Knee {step}^LOCAL|MR ROOM|RAD-MR|MR1"
        for step in "AB"
    ]
    return "\r".join([
        _msh("OMI^O23^OMI_O23", f"OMI-{n}"),
        f"PID|||{pid}^^^HOSP||Canary^Zzother||19801224|F",
        "PV1||I|WARD3^12^1",
        f"ORC|NW|PLC-{acc}^RIS|FIL-{acc}^RIS||SC||||20261125090000",
        "TQ1|||||||20261126101500",
        f"OBR|1|PLC-{acc}^RIS|FIL-{acc}^RIS|MRKNEE^MR knee^LOCAL",
        *ipcs,
    ]).encode()  # fmt: skip


def adt(n: int, event: str, pid: str, prior: str = "") -> bytes:
    segments = [
        _msh(f"ADT^{event}", f"ADT-{n}", "20261125090000"),
        f"EVN|{event}|20261125090000",
        f"PID|||{pid}^^^HOSP||Canary^Zzname^Quentin||19010203|M",
        "PV1||I|WARD1^1^1",
    ]
    if prior:
        segments.append(f"MRG|{prior}^^^HOSP")
    return "\r".join(segments).encode()


def messages() -> list[bytes]:
    """The flows, in order (see the module docstring)."""
    orders = list(ACCESSIONS.items())[:3]
    out = [orm(n, "NW", pid, acc) for n, (acc, pid) in enumerate(orders, start=1)]
    out.append(omi(4, CHANGED, "CNRYACC0042"))
    out.append(orm(5, "CA", PATIENT, CANCEL_FIRST))
    out += [orm(6, "NW", PATIENT, CANCELED), orm(7, "CA", PATIENT, CANCELED, "20261125083100")]
    out.append(adt(8, "A08", PATIENT))
    out.append(adt(9, "A40", OLD, OLDER))
    out.append(adt(10, "A40", PATIENT, OLD))
    out.append(adt(11, "A47", NEW_ID, CHANGED))
    return out


# -- dump and load ----------------------------------------------------------------


def _enc(reply: object) -> Any:
    value = _bytes(reply)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode()}


def _bytes(reply: object) -> bytes:
    """A reply of the dump's client, which does not decode responses."""
    assert isinstance(reply, bytes), type(reply)
    return reply


def _dec(value: Any) -> bytes:
    return base64.b64decode(value["b64"]) if isinstance(value, dict) else value.encode("utf-8")


def dump(client: redis.Redis) -> dict[str, Any]:
    """Every key of the Redis: type, value and remaining TTL (ms, -1 for none)."""
    out: dict[str, Any] = {}
    for raw in sorted(client.scan_iter(count=1000)):
        kind, ttl = _bytes(client.type(raw)).decode(), client.pttl(raw)
        value: Any
        if kind == "string":
            value = _enc(client.get(raw))
        elif kind == "hash":
            value = {_enc(k): _enc(v) for k, v in sorted(client.hgetall(raw).items())}
        elif kind == "set":
            value = sorted(_enc(m) for m in client.smembers(raw))
        elif kind == "zset":
            scored = cast(list[tuple[bytes, float]], client.zrange(raw, 0, -1, withscores=True))
            value = [[_enc(m), s] for m, s in scored]
        elif kind == "stream":
            rows = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(raw))
            value = [[i.decode(), {_enc(k): _enc(v) for k, v in f.items()}]
                     for i, f in rows]  # fmt: skip
        else:
            raise ValueError(f"a {kind} key: not expected in the broker's Redis")
        out[raw.decode()] = {"type": kind, "ttl_ms": ttl, "value": value}
    return out


def load(client: redis.Redis, data: dict[str, Any]) -> None:
    """Write a :func:`dump` into ``client``'s Redis."""
    for name, item in data.items():
        kind, value = item["type"], item["value"]
        if kind == "string":
            client.set(name, _dec(value))
        elif kind == "hash":
            client.hset(name, mapping={_dec(k): _dec(v) for k, v in value.items()})
        elif kind == "set":
            client.sadd(name, *(_dec(m) for m in value))
        elif kind == "zset":
            client.zadd(name, {_dec(m): s for m, s in value})
        elif kind == "stream":
            for record_id, fields in value:
                client.xadd(name, {_dec(k): _dec(v) for k, v in fields.items()}, id=record_id)
        if item["ttl_ms"] > 0:
            client.pexpire(name, item["ttl_ms"])


# -- making the fixture (run with schema 1's broker on the path) -------------------


def _mpps(port: int, ae_title: str) -> None:
    """A modality: N-CREATE for CNRYACC4711's step, then COMPLETED; one for a step of the
    OMI order left IN PROGRESS."""
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid
    from pynetdicom import AE
    from pynetdicom.sop_class import uid_to_sop_class

    # pynetdicom names its SOP classes at run time (untyped); this file imports nothing from tests
    ModalityPerformedProcedureStep = uid_to_sop_class("1.2.840.10008.3.1.2.3.3")

    ae = AE(ae_title="CT_SCANNER")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", port, ae_title=ae_title)
    assert assoc.is_established
    for acc, sps, rp, pid, study, done in (
        ("CNRYACC4711", "SPS-1", "RP-1", PATIENT, STUDY, True),
        ("CNRYACC0042", "SPS-4A", "RP-4", NEW_ID, "1.2.826.0.1.3680043.10.543.4", False),
    ):
        step = Dataset()
        step.StudyInstanceUID, step.AccessionNumber = study, acc
        step.ScheduledProcedureStepID, step.RequestedProcedureID = sps, rp
        ds = Dataset()
        ds.ScheduledStepAttributesSequence = [step]
        ds.PatientID, ds.PatientName = pid, "Canary^Zzname"
        ds.PerformedProcedureStepID, ds.PerformedStationAETitle = "PPS-1", "CT_SCANNER"
        ds.PerformedProcedureStepStartDate, ds.PerformedProcedureStepStartTime = "20261126", "0930"
        ds.PerformedProcedureStepStatus, ds.Modality = "IN PROGRESS", "CT"
        uid = generate_uid()
        status, _ = assoc.send_n_create(ds, ModalityPerformedProcedureStep, uid)
        assert status.Status == 0, status
        if done:
            end = Dataset()
            end.PerformedProcedureStepStatus = "COMPLETED"
            status, _ = assoc.send_n_set(end, ModalityPerformedProcedureStep, uid)
            assert status.Status == 0, status
    assoc.release()


def main(target: Path) -> None:
    from broker.app import Broker
    from broker.mllp.client import MLLPClient, summarize_ack
    from broker.settings import load_settings

    print(f"broker package: {sys.modules['broker'].__file__}")
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(environ={}, overrides={
            "hl7_host": "127.0.0.1", "hl7_port": 0, "dicom_host": "127.0.0.1", "dicom_port": 0,
            "admin_port": 0,
            "data_dir": Path(tmp), "retention_interval_seconds": 0,
            "mappings_dir": Path(__file__).resolve().parents[1] / "mappings",
        })  # fmt: skip
        loop = asyncio.new_event_loop()
        broker = Broker(settings)
        endpoints = loop.run_until_complete(broker.start())
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            with MLLPClient("127.0.0.1", endpoints.hl7_port, timeout=30) as client:
                for message in messages():
                    summary = summarize_ack(client.send(message))
                    print(summary.code, summary.control_id, summary.text, *summary.errors)
                    assert summary.code == "AA", summary
            _mpps(endpoints.dicom_port, endpoints.ae_title)
            assert broker.store is not None
            data = dump(broker.store.client)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.run_until_complete(broker.stop())
    target.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(data)} keys written to {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
