"""The mapping preview and the router read the same bytes with the same decoder.

A Latin-1 order without MSH-18 from a sender configured ``8859/1``: the preview
shows the umlauts and the very entries the router stores; without that setting
both refuse it the same way (AE 102 at MSH-18, the bytes are not UTF-8). A sender
known by its address only (an ``[hl7_senders]`` table without ``application``) gives
its charset to the preview from that address, to intake, and to a reprocess.
"""

from __future__ import annotations

from pathlib import Path

import redis

from broker.app import build_decoder, build_services, router_config
from broker.mapping.registry import MappingRegistry
from broker.mllp.client import split_messages, summarize_ack
from broker.services.preview import preview, render
from broker.services.routing import HL7Router
from broker.settings import load_settings
from broker.store.message_records import MessageQuery
from broker.store.worklist import WorklistStore
from broker.worklist.model import CandidateCriteria
from tests.broker_runner import DATA, MAPPINGS
from tests.conftest import TEST_SECRET

LATIN1 = split_messages((DATA / "orm_o01_nw_latin1.hl7").read_bytes())[0]
NO_MSH18 = LATIN1.replace(b"|8859/1\r", b"|\r", 1)  # MSH-3 RIS, MSH-4 RADIOLOGY


def test_the_message_has_no_msh18_and_latin1_umlauts() -> None:
    assert NO_MSH18 != LATIN1 and b"M\xfcller" in NO_MSH18
    assert NO_MSH18.split(b"\r", 1)[0].endswith(b"|2.3.1||||||")


def test_a_senders_charset_gives_the_preview_the_entries_intake_stores(
    store: WorklistStore,
) -> None:
    settings = load_settings(
        environ={
            "MWL_BROKER_HL7_SENDER_CHARSETS": "RIS^RADIOLOGY=8859/1",
            "MWL_BROKER_HL7_SENDER_TIMEZONES": "RIS=Asia/Tokyo",
        }
    )
    registry = MappingRegistry.load(MAPPINGS)
    shown = preview(NO_MSH18, registry, build_decoder(settings))
    assert shown.error is None, shown.outcome
    (entry,) = shown.changes[0].entries
    assert str(entry.dataset.PatientName) == "M\u00fcller^J\u00fcrgen^^Dr."
    assert shown.decoding is not None
    assert (shown.decoding.charset, shown.decoding.zone) == ("iso8859-1", "Asia/Tokyo")
    assert shown.decoding.sent_utc == "20261124233000.000000"  # 08:30 in Tokyo
    text = render(shown)
    assert "Charset  iso8859-1\n" in text
    assert "MSH-7 20261125083000 = 2026-11-24 23:30:00 UTC (without an offset: Asia/Tokyo)" in text

    router = HL7Router(store, lambda: registry, router_config(settings))
    assert summarize_ack(router.handle(NO_MSH18, "10.0.0.1:1")).code == "AA"
    (stored,) = store.candidates(CandidateCriteria())
    assert stored.to_json_dict() == entry.dataset.to_json_dict()


def test_without_the_setting_preview_and_intake_refuse_alike(store: WorklistStore) -> None:
    settings = load_settings(environ={})
    registry = MappingRegistry.load(MAPPINGS)
    shown = preview(NO_MSH18, registry, build_decoder(settings))
    assert shown.outcome.startswith("AE 102 at MSH-18: byte 0xFC at offset")
    assert shown.outcome.endswith("is not valid utf-8")
    assert shown.decoding is None and "Charset" not in render(shown)

    router = HL7Router(store, lambda: registry, router_config(settings))
    ack = summarize_ack(router.handle(NO_MSH18, "10.0.0.1:1"))
    error = shown.error
    assert error is not None
    assert (ack.code, ack.text) == (error.ack_code.value, error.text)  # MSA-1, MSA-3
    assert ack.errors == (f"MSH-18 102 {error.err_code.text}",)  # v2.3.1: ERR-1
    assert store.count() == 0


def test_a_sender_known_by_address_decodes_alike_in_preview_intake_and_reprocess(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    config = tmp_path / "broker.toml"  # a [hl7_senders] table without MSH-3: by address only
    config.write_text('[hl7_senders.RIS]\naddresses = ["10.1.2.0/24"]\ncharset = "8859/1"\n')
    environ = {"MWL_BROKER_REDIS_KEY_SECRET": TEST_SECRET.decode()}
    settings = load_settings(
        config_file=config, environ=environ, overrides={"mappings_dir": MAPPINGS}
    )
    services = build_services(settings, redis_client)
    (shown,) = services.mappings.preview(NO_MSH18, "no_msh18.hl7", peer="10.1.2.3").results
    assert shown.error is None, shown.outcome
    (entry,) = shown.changes[0].entries
    assert str(entry.dataset.PatientName) == "M\u00fcller^J\u00fcrgen^^Dr."
    (elsewhere,) = services.mappings.preview(NO_MSH18, "no_msh18.hl7", peer="10.9.9.9").results
    assert elsewhere.outcome.startswith("AE 102 at MSH-18")

    services.live_mappings.load()
    assert summarize_ack(services.intake.handle(NO_MSH18, "10.1.2.3:5000")).code == "AA"
    (stored,) = services.store.candidates(CandidateCriteria())
    assert stored.to_json_dict() == entry.dataset.to_json_dict()

    (logged,) = services.messages.find(MessageQuery()).items
    again = services.reprocess.reprocess(logged.id)  # decoded as from 10.1.2.3: a resend
    assert again.summary.code == "AA" and again.new_id
    assert services.store.count() == 1
