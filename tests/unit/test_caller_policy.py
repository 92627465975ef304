"""The association acceptance policy: ``ProfileSet.decide(calling AE, address)``, pure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker.common.netaddr import peer_ip
from broker.dicom.peers import loggable_ae
from broker.dicom.profiles import DEFAULT_PROFILE, LOOPBACK, Decision, ProfileSet, Refusal
from broker.errors import ConfigError
from broker.settings import Settings, load_settings

SCANNERS: dict[str, Any] = {
    "CT1": {"addresses": ["10.1.2.3", "10.9.0.0/16", "fd00::/64"], "scope": "own"},
    "MR1": {"addresses": ["any"], "scope": "own"},
}


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "127.0.0.2", "127.255.0.9", "::1", "::ffff:127.0.0.1"]
)
def test_by_default_unknown_callers_are_served_from_loopback(address: str) -> None:
    decision = ProfileSet.parse(SCANNERS).decide("FINDSCU", address)
    assert decision == Decision(DEFAULT_PROFILE) and decision.accepted


@pytest.mark.parametrize(
    "address", ["10.1.2.3", "192.0.2.2", "::ffff:10.0.0.1", "fd00::1", "", "x"]
)
def test_by_default_unknown_callers_from_the_network_are_refused(address: str) -> None:
    decision = ProfileSet.parse(SCANNERS).decide("FINDSCU", address)
    assert not decision.accepted and decision.profile is None
    assert decision.refusal is Refusal.UNKNOWN_CALLER_NOT_LOOPBACK
    assert decision.refusal.unknown_caller


@pytest.mark.parametrize(
    ("address", "accepted"),
    [
        ("10.1.2.3", True),
        ("::ffff:10.1.2.3", True),  # an IPv4 peer on a dual-stack socket
        ("10.9.200.1", True),
        ("fd00::42", True),
        ("10.1.2.4", False),
        ("127.0.0.1", False),  # a table's addresses hold on loopback too
        ("fd01::1", False),
        ("", False),
    ],
)
def test_a_table_admits_its_addresses_and_networks(address: str, accepted: bool) -> None:
    for mode in (LOOPBACK, True, False):
        decision = ProfileSet.parse(SCANNERS, allow_unknown=mode).decide(" CT1  ", address)
        if accepted:
            assert decision.profile is not None and decision.profile.ae_title == "CT1"
        else:
            assert decision == Decision(None, Refusal.ADDRESS_NOT_LISTED)
            assert decision.refusal is not None
            assert not decision.refusal.unknown_caller


def test_a_scanner_table_must_say_where_the_scanner_connects_from() -> None:
    table: dict[str, Any]
    for table in ({"scope": "own"}, {"addresses": []}):
        with pytest.raises(ConfigError) as raised:
            ProfileSet.parse({"CT9": table})
        assert raised.value.setting == "scanners.CT9.addresses"
        assert '["any"]' in str(raised.value)
    with pytest.raises(ConfigError, match="cannot be combined"):
        ProfileSet.parse({"CT9": {"addresses": ["any", "10.1.2.3"]}})
    # the "*" table may leave them out: its callers follow dicom_allow_unknown_callers
    assert ProfileSet.parse({"*": {"max_answers": 5}}).decide("X", "127.0.0.1").accepted


def test_a_table_with_any_address_admits_every_address() -> None:
    assert ProfileSet.parse(SCANNERS).from_any_address == ["MR1"]
    for mode in (LOOPBACK, True, False):
        profiles = ProfileSet.parse(SCANNERS, allow_unknown=mode)
        for address in ("10.7.7.7", "127.0.0.1", "2001:db8::1"):
            profile = profiles.for_caller("MR1", address)
            assert profile is not None and profile.ae_title == "MR1"


def test_allowing_unknown_callers_everywhere_or_nowhere() -> None:
    anywhere = ProfileSet.parse(SCANNERS, allow_unknown=True)
    assert anywhere.decide("FINDSCU", "203.0.113.9") == Decision(DEFAULT_PROFILE)
    nowhere = ProfileSet.parse(SCANNERS, allow_unknown=False)
    for address in ("127.0.0.1", "10.1.2.3"):
        assert nowhere.decide("FINDSCU", address) == Decision(None, Refusal.UNKNOWN_CALLER)


def test_the_star_table_narrows_where_unknown_callers_come_from() -> None:
    scanners = {"*": {"addresses": ["10.1.0.0/16"], "max_answers": 50}}
    profiles = ProfileSet.parse(scanners, allow_unknown=True)
    profile = profiles.for_caller("ANY", "10.1.4.4")
    assert profile is not None and profile.max_answers == 50
    assert profiles.decide("ANY", "10.2.0.1").refusal is Refusal.UNKNOWN_CALLER_ADDRESS
    local = ProfileSet.parse({"*": {"addresses": ["127.0.0.2"]}})  # loopback, narrowed
    assert local.decide("ANY", "127.0.0.2").accepted
    assert local.decide("ANY", "127.0.0.1").refusal is Refusal.UNKNOWN_CALLER_ADDRESS


def test_a_caller_named_star_is_an_unknown_caller() -> None:
    profiles = ProfileSet.parse({"CT1": {"addresses": ["any"]}, "*": {}}, allow_unknown=False)
    assert profiles.decide("*", "127.0.0.1").refusal is Refusal.UNKNOWN_CALLER
    assert profiles.own_profile("*") is None


def test_star_addresses_beyond_loopback_need_unknown_callers_allowed() -> None:
    scanners = {"*": {"addresses": ["127.0.0.1", "10.1.0.0/16"]}}
    with pytest.raises(ConfigError) as refused:
        ProfileSet.parse(scanners)
    assert refused.value.setting == "scanners.*.addresses"
    assert "10.1.0.0/16" in refused.value.message
    assert "set dicom_allow_unknown_callers = true" in refused.value.message
    assert ProfileSet.parse(scanners, allow_unknown=True).decide("X", "10.1.9.9").accepted


def test_explain_without_an_address() -> None:
    profiles = ProfileSet.parse(SCANNERS)
    assert profiles.regardless_of_address("FINDSCU") is DEFAULT_PROFILE
    ct1 = profiles.regardless_of_address("CT1")
    assert ct1 is not None and ct1.ae_title == "CT1"
    assert ProfileSet.parse(SCANNERS, allow_unknown=False).regardless_of_address("X") is None


def test_a_decision_is_a_profile_or_a_refusal() -> None:
    with pytest.raises(ValueError, match="either"):
        Decision(None)
    with pytest.raises(ValueError, match="either"):
        Decision(DEFAULT_PROFILE, Refusal.UNKNOWN_CALLER)
    with pytest.raises(ValueError, match="allow_unknown"):
        ProfileSet({}, allow_unknown="maybe")  # type: ignore[arg-type]


def test_peer_addresses() -> None:
    assert str(peer_ip("::ffff:192.0.2.2")) == "192.0.2.2"
    assert str(peer_ip(" 10.0.0.1 ")) == "10.0.0.1"
    assert peer_ip("ct1.example.org") is None and peer_ip("") is None


def test_ae_titles_in_log_lines_are_printable_and_bounded() -> None:
    assert loggable_ae("  CT1 ") == "CT1"
    assert loggable_ae("CT1\r\nFORGED LINE") == "CT1??FORGED LINE"
    assert loggable_ae("Ä" * 40) == "?" * 16 + "..."
    assert loggable_ae(b"CT\x00") == "b'CT\\x00'"


@pytest.mark.parametrize(
    ("text", "value"),
    [('"loopback"', LOOPBACK), ('"LOOPBACK"', LOOPBACK), ("true", True), ("false", False)],
)
def test_the_setting_in_a_file(tmp_path: Path, text: str, value: object) -> None:
    config = tmp_path / "broker.toml"
    config.write_text(
        f"[broker]\ndicom_allow_unknown_callers = {text}\n"
        '[scanners.CT1]\naddresses = ["any"]\nscope = "own"\n',
        encoding="utf-8",
    )
    assert load_settings(config_file=config, environ={}).dicom_allow_unknown_callers == value


def test_the_setting_defaults_to_loopback_and_says_its_values() -> None:
    assert Settings().dicom_allow_unknown_callers == LOOPBACK
    environ = {"MWL_BROKER_DICOM_ALLOW_UNKNOWN_CALLERS": "sometimes"}
    with pytest.raises(ConfigError) as refused:
        load_settings(environ=environ)
    assert refused.value.setting == "MWL_BROKER_DICOM_ALLOW_UNKNOWN_CALLERS"
    assert '"loopback"' in refused.value.message and "true" in refused.value.message
    with pytest.raises(ConfigError) as direct:
        Settings(dicom_allow_unknown_callers="sometimes")  # type: ignore[arg-type]
    assert direct.value.setting == "dicom_allow_unknown_callers"


def test_an_old_star_table_with_network_addresses_says_what_to_change(tmp_path: Path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text('[scanners."*"]\naddresses = ["10.1.0.0/16"]\n', encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_settings(config_file=config, environ={})
    assert refused.value.setting == "scanners.*.addresses"
    assert "dicom_allow_unknown_callers = true" in refused.value.message
    config.write_text(
        "[broker]\ndicom_allow_unknown_callers = true\n"
        '[scanners."*"]\naddresses = ["10.1.0.0/16"]\n',
        encoding="utf-8",
    )
    assert load_settings(config_file=config, environ={}).dicom_allow_unknown_callers is True


def test_addresses_no_caller_could_use_are_known_before_the_request() -> None:
    listed = ProfileSet.parse(SCANNERS)  # CT1 from its networks, MR1 from anywhere
    assert listed.may_connect("192.0.2.7")  # MR1's "any"
    narrow = ProfileSet.parse({"CT1": SCANNERS["CT1"]})
    assert narrow.may_connect("10.9.1.1") and narrow.may_connect("127.0.0.1")  # loopback
    assert not narrow.may_connect("192.0.2.7") and not narrow.may_connect("")
    closed = ProfileSet.parse({"CT1": SCANNERS["CT1"]}, allow_unknown=False)
    assert not closed.may_connect("127.0.0.1") and closed.may_connect("fd00::9")
    star = ProfileSet.parse({"*": {"addresses": ["10.1.0.0/16"]}}, allow_unknown=True)
    assert star.may_connect("10.1.2.3") and not star.may_connect("10.2.0.1")
    for address in ("10.9.1.1", "192.0.2.7", "127.0.0.1", "10.1.2.3"):
        for profiles in (listed, narrow, closed, star):  # never closes a caller decide admits
            if any(profiles.decide(ae, address).accepted for ae in ("CT1", "MR1", "X")):
                assert profiles.may_connect(address)
