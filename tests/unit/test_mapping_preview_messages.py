"""The mapping preview over every message of the collections: tracing changes no result, the
preview shows what the router maps, and every order previews and renders."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from broker.errors import HL7Error
from broker.hl7.message import ParsedMessage, peek_header
from broker.hl7.paths import Value
from broker.mapping.engine import Trace, map_message
from broker.mapping.patient import map_patient_message
from broker.mapping.registry import MappingRegistry
from broker.mapping.spec import ValueRule
from broker.mapping.stations import StationRule
from broker.services.preview import preview, render
from broker.worklist.dicom_json import entry_json
from broker.worklist.model import Truncation
from tests.corpus import hl7_corpus_messages
from tests.messages import own_messages
from tests.unit.mapping_helpers import DECODER, row

ORDER_TYPES = {"ORM", "OMI", "OMG"}


# -- the trace only observes -------------------------------------------------------------


class _Counting:
    """A minimal trace that only counts the hooks, to check that tracing changes nothing."""

    def __init__(self) -> None:
        self.calls = 0

    def entry(self, order_key: str) -> None:
        self.calls += 1

    def sequence(self, keyword: str | None) -> None:
        self.calls += 1

    def rule(self, rule: ValueRule) -> None:
        self.calls += 1

    def evaluated(
        self,
        rule: ValueRule,
        location: str | None,
        raw: Sequence[Value],
        values: Sequence[str],
        seed: str | None,
    ) -> None:
        self.calls += 1

    def truncated(self, cut: Truncation) -> None:
        self.calls += 1

    def done(self, values: Sequence[str]) -> None:
        self.calls += 1

    def station(self, rule: StationRule | None) -> None:
        self.calls += 1


def test_results_with_and_without_a_trace_are_identical(registry: MappingRegistry) -> None:
    raws = [raw for _, raw in own_messages()]
    compared = traced = 0
    for raw in raws:
        try:
            parsed = DECODER.decode(raw)
        except HL7Error:
            continue
        outcomes = []
        for trace in (None, _Counting()):
            try:
                outcomes.append(_mapped(registry, parsed, trace))
            except HL7Error as e:
                outcomes.append(str(e))
            traced += trace.calls if trace is not None else 0
        if outcomes[0] is None:
            continue  # no mapping for the type
        assert outcomes[0] == outcomes[1], parsed.control_id
        compared += 1
    assert compared >= 40 and traced > 1000, (compared, traced)


def _mapped(registry: MappingRegistry, parsed: ParsedMessage, trace: Trace | None) -> object:
    """The message mapped, as plain data (datasets as DICOM JSON); None without a mapping."""
    mtype = parsed.message_type
    order, patient = registry.for_message(mtype), registry.for_patient_message(mtype)
    if order is not None:
        result = map_message(parsed.segments, order, message_type=mtype, trace=trace)
        return [result.truncations] + [
            (c.order_key, c.action, c.status, [entry_json(e) for e in c.entries])
            for c in result.changes
        ]
    if patient is not None:
        adt = map_patient_message(parsed.segments, patient, message_type=mtype, trace=trace)
        return [adt.action, adt.truncations] + [
            (c.patient_id, c.prior_id, c.attributes.to_json_dict()) for c in adt.changes
        ]
    return None


def test_the_preview_shows_what_the_router_maps(registry: MappingRegistry) -> None:
    """Every entry and patient of a preview is what map_message gives without a trace."""
    raws = [raw for _, raw in own_messages()]
    shown_count = 0
    for raw in raws:
        shown = preview(raw, registry, DECODER)
        if shown.error is not None:
            continue
        parsed = DECODER.decode(raw)
        expected = _mapped(registry, parsed, None)
        if shown.patient_action is not None:
            actual: object = [shown.patient_action, shown.warnings] + [
                (p.patient_id, p.prior_id, p.attributes.to_json_dict()) for p in shown.patients
            ]
        else:
            actual = [shown.warnings] + [
                (c.order_key, c.action, c.status, [e.dataset.to_json_dict() for e in c.entries])
                for c in shown.changes
            ]
        assert actual == expected, parsed.control_id
        shown_count += 1
    assert shown_count >= 40


# -- the corpus --------------------------------------------------------------------------


def test_preview_runs_over_every_own_order_message(registry: MappingRegistry) -> None:
    seen, accepted = previews_render(registry, own_messages())
    assert seen >= 40 and accepted >= 35, (seen, accepted)


@pytest.mark.corpus
def test_preview_runs_over_every_corpus_order_message(registry: MappingRegistry) -> None:
    seen, accepted = previews_render(registry, hl7_corpus_messages())
    assert seen >= 30 and accepted >= 10, (seen, accepted)


def previews_render(
    registry: MappingRegistry, messages: list[tuple[str, bytes]]
) -> tuple[int, int]:
    """Every order previews and renders (an HL7 error is an outcome); counts."""
    seen = accepted = 0
    for name, raw in messages:
        header = peek_header(raw)
        if header is None or header["message_type"][:3] not in ORDER_TYPES:
            continue
        seen += 1
        try:
            result = preview(raw, registry, DECODER)
            text = render(result)
        except Exception as e:  # an HL7 error is an outcome; an exception is a bug
            pytest.fail(f"{name}: {type(e).__name__}: {e}")
        assert text.startswith("Message  "), name
        if result.error is None:
            accepted += 1
            for change in result.changes:
                for entry in change.entries:
                    rows = {r.attribute for r in entry.trace}
                    assert "PatientID" in rows and row(entry, "PatientID").value, name
        else:
            assert result.outcome in text, name
    return seen, accepted
