"""The HL7 senders: which source addresses may connect, and what their messages may call
themselves in MSH-3/MSH-4 (pure, no sockets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.errors import ConfigError, HL7Error
from broker.hl7.message import MessageDecoder
from broker.hl7.senders import SenderSet, peer_address
from broker.settings import load_settings

TABLES = {
    "RIS": {"addresses": ["10.1.2.3", "10.1.8.0/24"], "application": "RIS", "facility": "RAD"},
    "LAB": {"addresses": ["10.1.8.7"], "application": "LAB"},
    "V6": {"addresses": ["2001:db8::/64"]},
}


def message(app: str, facility: str) -> bytes:
    return (
        f"MSH|^~\\&|{app}|{facility}|MWL|HOSP|20261125083000||ORM^O01|C1|P|2.5\rPID|||P1\r"
    ).encode()


def test_with_no_sender_only_loopback_may_connect() -> None:
    senders = SenderSet.parse({})
    for address in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        assert senders.admits(address), address
    for address in ("10.1.2.3", "192.168.1.5", "::ffff:10.0.0.1", "2001:db8::1", "not-an-ip"):
        assert not senders.admits(address), address


def test_listed_addresses_and_networks_are_admitted_and_nothing_else() -> None:
    senders = SenderSet.parse(TABLES)
    assert senders.admits("10.1.2.3") and senders.admits("10.1.8.200")
    assert senders.admits("2001:db8::42") and senders.admits("::ffff:10.1.2.3")
    assert not senders.admits("10.1.2.4") and not senders.admits("127.0.0.1")
    found = senders.sender_for("10.1.8.7")
    assert found is not None and found.name == "LAB"  # the more specific network wins
    other = senders.sender_for("10.1.8.8")
    assert other is not None and other.name == "RIS"


def test_a_message_must_carry_its_addresses_msh3_and_msh4() -> None:
    senders = SenderSet.parse(TABLES)
    decoder = MessageDecoder()
    senders.check_message("10.1.2.3:5000", decoder.decode(message("RIS^1.2.3^ISO", "RAD")))
    with pytest.raises(HL7Error) as wrong_app:
        senders.check_message("10.1.2.3:5000", decoder.decode(message("LAB", "RAD")))
    assert (wrong_app.value.ack_code.value, wrong_app.value.location) == ("AR", "MSH-3")
    assert "belongs to sender RIS" in wrong_app.value.text
    with pytest.raises(HL7Error) as wrong_facility:
        senders.check_message("10.1.2.3:5000", decoder.decode(message("RIS", "ER")))
    assert wrong_facility.value.location == "MSH-4"
    senders.check_message("[2001:db8::9]:5000", decoder.decode(message("ANY", "ANY")))
    senders.check_message("reprocess of message 7", decoder.decode(message("LAB", "X")))


def test_peer_addresses() -> None:
    assert peer_address("10.1.2.3:5000") == "10.1.2.3"
    assert peer_address("[::1]:5000") == "::1"
    assert peer_address("reprocess of message 7") == "reprocess of message 7"


@pytest.mark.parametrize(
    ("table", "setting", "message"),
    [
        ({"application": "RIS"}, "hl7_senders.X.addresses", "required"),
        ({"addresses": ["10.1.2"]}, "hl7_senders.X.addresses", "not an IP address or network"),
        ({"addresses": ["10.1.2.3"], "adresses": []}, "hl7_senders.X.adresses", "unknown key"),
        ({"addresses": ["10.1.2.3"], "charset": "latin9"}, "hl7_senders.X.charset", "0211"),
        ({"addresses": ["10.1.2.3"], "timezone": "Mars/Base"}, "hl7_senders.X.timezone", "IANA"),
    ],
)
def test_a_wrong_table_stops_the_start_naming_the_key(
    tmp_path: Path, table: dict[str, object], setting: str, message: str
) -> None:
    config = tmp_path / "broker.toml"
    lines = ["[hl7_senders.X]"]
    for key, value in table.items():
        rendered = (
            "[" + ", ".join(f'"{v}"' for v in value) + "]"
            if isinstance(value, list)
            else f'"{value}"'
        )
        lines.append(f"{key} = {rendered}")
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=config, environ={})
    assert info.value.setting == setting and message in info.value.message
