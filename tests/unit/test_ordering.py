"""MSH-7 as a UTC interval (HL7 v2.5.1 §2A.22 DTM) for the message-order rule."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from broker.app import router_config
from broker.errors import ConfigError
from broker.settings import load_settings
from broker.worklist.ordering import MessageTime, message_time


@pytest.mark.parametrize(
    ("msh7", "earliest", "latest"),
    [
        ("2026", "20260101000000.000000", "20270101000000.000000"),
        ("202612", "20261201000000.000000", "20270101000000.000000"),
        ("20260131", "20260131000000.000000", "20260201000000.000000"),
        ("2026013123", "20260131230000.000000", "20260201000000.000000"),
        ("202601312359", "20260131235900.000000", "20260201000000.000000"),
        ("20260131235959", "20260131235959.000000", "20260201000000.000000"),
        ("20260131235959.5", "20260131235959.500000", "20260131235959.600000"),
        ("20260131235959.1234", "20260131235959.123400", "20260131235959.123500"),
        ("20260101120000+0100", "20260101110000.000000", "20260101110001.000000"),
        ("20260101003000-0530", "20260101060000.000000", "20260101060001.000000"),
        ("20260101+0200", "20251231220000.000000", "20260101220000.000000"),
    ],
)
def test_precision_and_zone_give_a_utc_interval(msh7: str, earliest: str, latest: str) -> None:
    assert message_time(msh7) == MessageTime(earliest, latest)


@pytest.mark.parametrize(
    "msh7",
    ["", "  ", "yesterday", "20261301", "20260230", "2026010112000", "20260101120000+2400",
     "20260101120000+0160", "20260101120000.12345", "9999"],
)  # fmt: skip
def test_missing_or_unparsable_msh7_gives_no_ordering(msh7: str) -> None:
    assert message_time(msh7) is None


def test_without_a_zone_two_times_keep_their_order() -> None:
    early, late = message_time("20260701080000"), message_time("20260701080001")
    assert early is not None and late is not None
    assert early.is_older_than(late.earliest)
    assert not late.is_older_than(early.earliest)
    assert not early.is_older_than(early.earliest)  # equal: applied, in arrival order


def test_a_time_without_offset_is_read_in_the_senders_zone() -> None:
    tokyo, berlin = ZoneInfo("Asia/Tokyo"), ZoneInfo("Europe/Berlin")
    in_tokyo = message_time("20261201090000", tokyo)
    in_berlin = message_time("20261201090000", berlin)
    assert in_tokyo is not None and in_berlin is not None
    assert in_tokyo.earliest == "20261201000000.000000"  # 09:00 JST is midnight UTC
    assert in_berlin.earliest == "20261201080000.000000"
    explicit = message_time("20261201090000+0000", tokyo)  # an offset always wins
    assert explicit is not None and explicit.earliest == "20261201090000.000000"


def test_sender_zones_from_settings_reach_the_decoded_message() -> None:
    settings = load_settings(
        environ={
            "MWL_BROKER_HL7_SENDER_TIMEZONES": "RIS_TOKYO=Asia/Tokyo,RIS^NORTH=Europe/Oslo",
            "MWL_BROKER_SITE_TIMEZONE": "Europe/Berlin",
        }
    )
    decoder = router_config(settings).decoder  # the router's, as build_decoder makes it

    def zone(msh3: str, msh4: str) -> object:
        raw = f"MSH|^~\\&|{msh3}|{msh4}|MWL|RAD|20261201090000||ORM^O01|1|P|2.5.1\r".encode()
        return decoder.decode(raw).zone

    assert zone("RIS_TOKYO", "ANY") == ZoneInfo("Asia/Tokyo")
    assert zone("RIS_TOKYO^1.2.3^ISO", "ANY") == ZoneInfo("Asia/Tokyo")  # HD-1, as for charsets
    assert zone("RIS", "NORTH^2.16.1^ISO") == ZoneInfo("Europe/Oslo")
    assert zone("RIS", "SOUTH") == ZoneInfo("Europe/Berlin")  # the site's
    with pytest.raises(ConfigError, match="RIS_X: 'Mars/Base' is not an IANA time zone name"):
        load_settings(environ={"MWL_BROKER_HL7_SENDER_TIMEZONES": "RIS_X=Mars/Base"})
