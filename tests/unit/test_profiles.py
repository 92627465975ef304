"""Scanner profiles: parsing from settings, lookup by caller, scope and windows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from broker.dicom.profiles import ProfileSet, site_zone
from broker.errors import ConfigError
from broker.settings import load_settings


def test_lookup_by_calling_ae_title_and_address() -> None:
    profiles = ProfileSet.parse(
        {"CT1": {"scope": "own", "addresses": ["10.0.0.5"]}, "*": {"max_answers": 50}},
        allow_unknown=True,
    )
    ct1 = profiles.for_caller("CT1 ", "10.0.0.5")  # AE titles are compared without padding
    assert ct1 is not None and ct1.stations == frozenset({"CT1"}) and not ct1.unassigned
    assert profiles.for_caller("CT1", "10.0.0.6") is None
    other = profiles.for_caller("MR9", "10.1.1.1")
    assert other is not None and other.max_answers == 50 and other.stations is None
    strict = ProfileSet.parse({"CT1": {"addresses": ["any"]}}, allow_unknown=False)
    assert strict.for_caller("MR9", "127.0.0.1") is None and strict.known_callers == ["CT1"]


def test_scope_and_window() -> None:
    us1 = {"addresses": ["any"], "scope": ["US1", "US2"]}
    profile = ProfileSet.parse({"US1": us1}).own_profile("US1")
    assert profile is not None
    assert profile.sees_station(["US2"]) and not profile.sees_station(["CT1"])
    assert not profile.sees_station([""])  # unassigned entries: not by default with a scope
    wide = ProfileSet.parse({"X": {"addresses": ["any"], "date_window": "-1..+2"}}).own_profile("X")
    assert wide is not None
    assert wide.window(dt.date(2026, 12, 31)) == ("20261230", "20270102")
    plain = ProfileSet.parse({"X": {"addresses": ["any"]}}).own_profile("X")
    assert plain is not None
    assert plain.window(dt.date.today()) is None


@pytest.mark.parametrize(
    ("table", "where", "text"),
    [
        ({"scope": "mine"}, "scanners.CT1.scope", '"own", "all" or a list'),
        ({"scoep": "own"}, "scanners.CT1.scoep", "unknown setting"),
        ({"date_window": "tomorrow"}, "scanners.CT1.date_window", '"-1..+1"'),
        ({"date_window": "+1..-1"}, "scanners.CT1.date_window", "day range"),
        ({"max_answers": 0}, "scanners.CT1.max_answers", "at least 1"),
        ({"over_limit": "drop"}, "scanners.CT1.over_limit", "truncate"),
        ({"sort": ["name"]}, "scanners.CT1.sort", "start, accession, patient, modality"),
        ({"character_set": "LATIN1"}, "scanners.CT1.character_set", "ISO_IR 100"),
        ({"unrepresentable": "drop"}, "scanners.CT1.unrepresentable", "utf8"),
        ({"hidden_statuses": ["DONE"]}, "scanners.CT1.hidden_statuses", "COMPLETED"),
        ({"addresses": "10.0.0.1"}, None, None),  # one text is a list of one
        ({"addresses": "10.0.0.1,10.0.0.2"}, "scanners.CT1.addresses", "10.1.2.0/24"),
        ({"addresses": ["ct1.example.org"]}, "scanners.CT1.addresses", "not resolved"),
        ({"addresses": ["10.1.2.3/24"]}, "scanners.CT1.addresses", "the network is 10.1.2.0/24"),
        ({"addresses": [3]}, "scanners.CT1.addresses", "list of text"),
        ({"mpps_update_others": "yes"}, "scanners.CT1.mpps_update_others", "true or false"),
        ({"unassigned": "yes"}, "scanners.CT1.unassigned", "true or false"),
        ({"modality": ""}, "scanners.CT1.modality", "modality code"),
    ],
)
def test_profile_errors_name_the_setting(table: dict[str, Any], where: str, text: str) -> None:
    table = {"addresses": ["10.0.0.9"], **table}
    if where is None:
        ProfileSet.parse({"CT1": table})
        return
    with pytest.raises(ConfigError) as refused:
        ProfileSet.parse({"CT1": table})
    assert refused.value.setting == where and text in refused.value.message


def test_own_scope_needs_an_ae_title_and_names_are_ae_titles() -> None:
    with pytest.raises(ConfigError, match="needs a profile named after an AE title"):
        ProfileSet.parse({"*": {"scope": "own"}})
    with pytest.raises(ConfigError, match="calling AE title"):
        ProfileSet.parse({"A_VERY_LONG_AE_TITLE": {}})


def test_settings_file_with_scanner_tables(tmp_path: Path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text(
        '[broker]\nsite_timezone = "Europe/Oslo"\ndicom_allow_unknown_callers = false\n'
        '[scanners.CT1]\naddresses = ["10.0.0.5"]\nscope = "own"\ndate_window = "today"\n',
        encoding="utf-8",
    )
    settings = load_settings(config_file=config, environ={})
    assert settings.dicom_scanners == {
        "CT1": {"addresses": ["10.0.0.5"], "scope": "own", "date_window": "today"}
    }
    assert not settings.dicom_allow_unknown_callers and site_zone(settings.site_timezone)
    config.write_text('[scanners.CT1]\naddresses = ["any"]\nscope = "mine"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_settings(config_file=config, environ={})
    assert refused.value.setting == "scanners.CT1.scope"
    with pytest.raises(ConfigError, match="IANA"):
        load_settings(environ={"MWL_BROKER_SITE_TIMEZONE": "Mars/Olympus"})
    with pytest.raises(ConfigError, match=r"\[scanners.<AE title>\] tables"):
        load_settings(environ={"MWL_BROKER_DICOM_SCANNERS": "CT1"})
