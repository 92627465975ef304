"""The router's dispatch: which decoder a peer's bytes get, and which mapping a type goes to."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from broker.errors import HL7Error
from broker.hl7.files import split_messages
from broker.hl7.message import MessageDecoder
from broker.hl7.senders import SenderSet
from broker.mapping.registry import MappingRegistry
from broker.services.dispatch import Dispatcher, SitePolicy
from broker.services.preview import preview
from tests.broker_runner import DATA, MAPPINGS
from tests.messages import own_messages

LATIN1 = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
NO_MSH18 = LATIN1.replace(b"|8859/1\r", b"|\r", 1)  # MSH-3 RIS, MSH-4 RADIOLOGY
SENDERS = SenderSet.parse(
    {
        "RIS": {"addresses": ["10.1.2.0/24"], "charset": "8859/1", "timezone": "Asia/Tokyo"},
        "LAB": {"addresses": ["10.9.9.9"], "application": "LAB"},
    }
)


@pytest.fixture(scope="module")
def registry() -> MappingRegistry:
    return MappingRegistry.load(MAPPINGS)


def test_a_peer_gets_the_charset_and_zone_of_the_table_that_lists_its_address() -> None:
    dispatch = Dispatcher(MessageDecoder(), SENDERS)
    parsed = dispatch.decode(NO_MSH18, "10.1.2.3:5000")
    assert parsed.charset == "iso8859-1" and "M\u00fcller" in parsed.text
    assert parsed.zone == ZoneInfo("Asia/Tokyo")
    for peer in ("10.9.9.9:5000", "127.0.0.1:5000", "reprocess of message 7", ""):
        assert dispatch.decoder_for(peer) is dispatch.decoder


def test_the_charset_of_msh3_and_msh4_comes_before_the_addresss() -> None:
    decoder = MessageDecoder(sender_charsets={"RIS^RADIOLOGY": "UNICODE UTF-8"})
    with pytest.raises(HL7Error, match="not valid utf-8"):
        Dispatcher(decoder, SENDERS).decode(NO_MSH18, "10.1.2.3:5000")


def test_preview_decodes_with_the_charset_of_the_peers_sender(
    registry: MappingRegistry,
) -> None:
    dispatch = Dispatcher(MessageDecoder(), SENDERS)
    shown = preview(NO_MSH18, registry, dispatch, peer="10.1.2.3:5000")
    assert shown.error is None, shown.outcome
    (entry,) = shown.changes[0].entries
    assert str(entry.dataset.PatientName) == "M\u00fcller^J\u00fcrgen^^Dr."
    assert shown.decoding is not None and shown.decoding.zone == "Asia/Tokyo"
    unknown = preview(NO_MSH18, registry, dispatch)  # no peer: the default, UTF-8
    assert unknown.outcome.startswith("AE 102 at MSH-18")


def test_the_route_is_the_patient_mapping_else_the_order_mapping(
    registry: MappingRegistry,
) -> None:
    dispatch = Dispatcher()
    for _, data in own_messages():
        try:
            msg = dispatch.decoder.decode(split_messages(data)[0])
        except HL7Error:
            continue  # the refused ones
        route = dispatch.route(msg, registry)
        if msg.message_type in registry.supported_types():
            assert (route.order is None) != (route.patient is None), msg.message_type
            spec = route.order or route.patient
            assert spec is not None and msg.message_type in spec.message_types
        else:
            assert route == (None, None)


def test_the_site_policy_is_intakes_and_the_type_policy_the_previews(
    registry: MappingRegistry,
) -> None:
    site = SitePolicy(frozenset({"P", "T"}), frozenset({"2.5.1"}), frozenset({"RIS"}))
    dispatch = Dispatcher(site=site)
    policy = dispatch.policy(registry)
    assert policy.supported_types == registry.supported_types()
    assert (policy.processing_ids, policy.versions, policy.accepted_senders) == (
        site.processing_ids,
        site.versions,
        site.accepted_senders,
    )
    msg = dispatch.decoder.decode(LATIN1)
    lenient = dispatch.type_policy(registry, msg)
    assert lenient.processing_ids == {msg.processing_id}
    assert not lenient.versions and not lenient.accepted_senders
