"""The outbound mapping (``kind: outbound``): its parser, the message builder and the
``[hl7_destinations]`` settings (pure, no Redis, no sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydicom.dataset import Dataset

from broker.errors import ConfigError
from broker.hl7.message import MessageDecoder
from broker.mapping.outbound_build import StatusEvent, UnmappedStatus, build_status_message
from broker.mapping.outbound_spec import OutboundSpec
from broker.mapping.patient_spec import load_any_mapping_text, parse_any_mapping
from broker.mapping.registry import MappingRegistry
from broker.services.mappings import check_mapping_files, check_mapping_texts
from broker.settings import load_settings
from broker.worklist import dicom_json

OUTBOUND = Path(__file__).resolve().parents[2] / "mappings" / "outbound.yaml"
TEXT = OUTBOUND.read_text(encoding="utf-8")


def spec_of(text: str = TEXT) -> OutboundSpec:
    spec = load_any_mapping_text("outbound.yaml", text)
    assert isinstance(spec, OutboundSpec)
    return spec


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_any_mapping_text("outbound.yaml", text)
    return f"{info.value.setting}: {info.value.message}"


def event(status: str = "COMPLETED", **attrs: Any) -> StatusEvent:
    ds = Dataset()
    ds.PatientName = "DOE^JOHN"
    ds.PatientID = "P|1"  # a separator in a value is escaped
    ds.PlacerOrderNumberImagingServiceRequest = "PL-7"
    ds.FillerOrderNumberImagingServiceRequest = "FI-7"
    ds.AccessionNumber = "ACC-7"
    ds.RequestedProcedureID = "RP-7"
    sps = Dataset()
    sps.ScheduledProcedureStepID = "SPS-7"
    ds.ScheduledProcedureStepSequence = [sps]
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return StatusEvent(dicom_json.entry_json(ds), status, "AB12CD42", 1764892800.0, "e1")


def segments(text: str) -> dict[str, list[str]]:
    return {s.split("|", 1)[0]: s.split("|") for s in text.split("\r")}


def test_the_default_file_is_in_the_set_and_claims_no_received_type() -> None:
    registry = MappingRegistry.from_texts({"outbound.yaml": TEXT})
    assert registry.outbound is not None and registry.outbound.message == "ORM^O01^ORM_O01"
    assert registry.supported_types() == frozenset()


@pytest.mark.parametrize(
    ("status", "control", "order_status"),
    [("STARTED", "SC", "IP"), ("COMPLETED", "SC", "CM"), ("DISCONTINUED", "SC", "DC"),
     ("CANCELED", "OC", "CA")],
)  # fmt: skip
def test_orc_1_and_5_per_status_with_the_orders_numbers(
    status: str, control: str, order_status: str
) -> None:
    text = build_status_message(spec_of(), event(status), application="MWL", facility="RAD")
    seg = segments(text)
    assert seg["MSH"][2:4] == ["MWL", "RAD"] and seg["MSH"][8] == "ORM^O01^ORM_O01"
    assert seg["MSH"][9] == "AB12CD42" and seg["MSH"][11] == "2.5.1"
    assert seg["MSH"][6] == "20251205000000+0000"
    assert seg["ORC"][1:6] == [control, "PL-7", "FI-7", "", order_status]
    assert seg["OBR"][18] == "ACC-7" and seg["OBR"][20] == "SPS-7"
    assert seg["OBR"][4] == "RP-7^"
    assert seg["PID"][3] == "P\\F\\1" and seg["PID"][5] == "DOE^JOHN"


def test_the_message_reads_back_with_the_decoder() -> None:
    text = build_status_message(spec_of(), event(), application="MWL", facility="")
    msg = MessageDecoder().decode(text.encode())
    assert msg.control_id == "AB12CD42" and msg.message_type == "ORM^O01"


def test_non_ascii_values_say_utf_8_in_msh_18() -> None:
    text = build_status_message(spec_of(), event(PatientName="MÜLLER^JÖRG"), application="M",
                                facility="")  # fmt: skip
    msh = segments(text)["MSH"]
    assert msh[17] == "UNICODE UTF-8" and "MÜLLER^JÖRG" in text


def test_a_status_without_a_row_is_not_built() -> None:
    with pytest.raises(UnmappedStatus, match="SCHEDULED"):
        build_status_message(spec_of(), event("SCHEDULED"), application="M", facility="")


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("5: {status: order_status}", "5: {status: order_state}", ":41: segments[2].ORC.5"),
        ("3: {attribute: PatientID}", "3: {attribute: PatientIdent}", ":35: segments[1].PID.3"),
        ("      9: {event: time}", "      9: {event: when}", ":42: segments[2].ORC.9"),
        ("  - ORC:", "  - MSH:", ":37: segments[2].MSH"),
        ("      1: \"1\"", "      x: \"1\"", ":44: segments[3].OBR.x"),
        ("  STARTED:", "  BEGUN:", ":25: statuses.BEGUN"),
        ("message: ORM^O01^ORM_O01", "message: ORM-O01", ":16: message"),
        ("name: outbound", "nmae: outbound", ":15: nmae"),
    ],
)  # fmt: skip
def test_errors_name_the_file_line_and_field(old: str, new: str, where: str) -> None:
    assert old in TEXT
    assert error_of(TEXT.replace(old, new)).startswith("outbound.yaml" + where)


def test_one_outbound_mapping_per_set() -> None:
    with pytest.raises(ConfigError, match="one outbound mapping per set"):
        MappingRegistry.from_texts({"a.yaml": TEXT, "b.yaml": TEXT})


def test_parse_any_mapping_takes_outbound_data() -> None:
    data = yaml.safe_load(TEXT)
    spec = parse_any_mapping(data, source="x.yaml", version="1", default_name="x")
    assert isinstance(spec, OutboundSpec) and spec.statuses["STARTED"]["order_status"] == "IP"


def test_destinations_and_a_senders_destination_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text(
        '[hl7_senders.RIS]\naddresses = ["10.1.2.3"]\ndestination = "ris"\n'
        '[hl7_destinations.ris]\nhost = "ris.example"\nport = 2576\nack_timeout = 5\n'
    )
    settings = load_settings(config_file=config, environ={})
    (ris,) = settings.destinations.values()
    assert (ris.host, ris.port, ris.ack_timeout, ris.max_queued) == (
        "ris.example",
        2576,
        5.0,
        10_000,
    )
    assert ris.backoff(1) == 1.0 and ris.backoff(4) == 8.0 and ris.backoff(30) == 300.0


@pytest.mark.parametrize(
    ("tables", "setting"),
    [
        ('[hl7_destinations.ris]\nport = 1\n', "hl7_destinations.ris.host"),
        ('[hl7_destinations.ris]\nhost = "h"\nport = 0\n', "hl7_destinations.ris.port"),
        ('[hl7_destinations.ris]\nhost = "h"\nport = 1\nretry_first = -1\n',
         "hl7_destinations.ris.retry_first"),
        ('[hl7_destinations.ris]\nhost = "h"\nport = 1\nmax_queued = 0\n',
         "hl7_destinations.ris.max_queued"),
        ('[hl7_destinations.ris]\nhost = "h"\nport = 1\ntls_cert = "/nope.pem"\n',
         "hl7_destinations.ris.tls_key"),
        ('[hl7_destinations.ris]\nhost = "h"\nport = 1\ntls_ca = "/nope.pem"\n',
         "hl7_destinations.ris.tls_ca"),
        ('[hl7_destinations.ris]\nhost = "h"\nport = 1\nhots = 2\n', "hl7_destinations.ris.hots"),
        ('[hl7_destinations."a b"]\nhost = "h"\nport = 1\n', "hl7_destinations.a b"),
        ('[hl7_senders.RIS]\naddresses = ["10.0.0.1"]\ndestination = "nope"\n',
         "hl7_senders.RIS.destination"),
    ],
)  # fmt: skip
def test_bad_destination_settings_name_the_table_and_key(
    tmp_path: Path, tables: str, setting: str
) -> None:
    config = tmp_path / "broker.toml"
    config.write_text(tables)
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=config, environ={})
    assert info.value.setting == setting


def test_the_mapping_editor_checks_an_outbound_file_with_the_set() -> None:
    base = {"outbound.yaml": TEXT}
    assert check_mapping_texts({"outbound.yaml": TEXT}, base) == ()
    broken = TEXT.replace("5: {status: order_status}", "5: {status: order_state}")
    (problem,) = check_mapping_texts({"outbound.yaml": broken}, base)
    assert (problem.file, problem.line, problem.rule) == ("outbound.yaml", 41, "segments[2].ORC.5")
    (twice,) = check_mapping_texts({"copy.yaml": TEXT}, base)
    assert twice.file is None and "one outbound mapping per set" in twice.message


def test_mapping_check_lists_the_outbound_file(tmp_path: Path) -> None:
    (checked,) = check_mapping_files([OUTBOUND]).files
    assert checked.error is None and checked.name == "outbound" and checked.message_types == ()
