"""C-FIND answers kept for repeated polls: the same answer only for the same entry
object, query shape, character set and policy; bounded; and what it sends is what
``build_response`` builds (encoded by pynetdicom, as a scanner receives it)."""

from __future__ import annotations

from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode

from broker.dicom.answers import AnswerCache
from broker.dicom.response import answer_shape, build_response
from tests.unit.matching_helpers import make, sps

ENTRY = {
    "PatientName": "Łódź^Zoë",
    "PatientID": "P1",
    "AccessionNumber": "A1",
    "ScheduledProcedureStepSequence": [
        {"ScheduledStationAETitle": "CT1", "Modality": "CT", "ScheduledProcedureStepID": "S1"}
    ],
}


def poll(station: str = "CT1", **top: str) -> Dataset:
    return make({"PatientName": "", "AccessionNumber": "", **top, **sps(
        ScheduledStationAETitle=station, Modality="", ScheduledProcedureStepID=""
    )})  # fmt: skip


def answer(
    cache: AnswerCache, query: Dataset, entry: Dataset, *, keep: bool = True, **options: str
) -> Dataset:
    charset = options.get("character_set", "ISO_IR 192")
    policy = options.get("unrepresentable", "utf8")
    return cache.answer(
        query, entry, shape=answer_shape(query), keep=keep, character_set=charset,
        unrepresentable=policy,
    )  # fmt: skip


def sent(ds: Dataset) -> Dataset:
    """The answer as the scanner decodes it."""
    raw = encode(ds, False, True)
    assert raw is not None
    return decode(BytesIO(raw), False, True)


def test_the_same_poll_gets_the_answer_built_before() -> None:
    cache, entry = AnswerCache(10), make(ENTRY)
    first = answer(cache, poll("CT1"), entry)
    again = answer(cache, poll("CT*"), entry)  # other values, same keys: same shape
    assert again is first
    assert len(cache) == 1


def test_other_return_keys_get_their_own_answer() -> None:
    cache, entry = AnswerCache(10), make(ENTRY)
    short = answer(cache, poll(), entry)
    longer = answer(cache, poll(PatientID=""), entry)
    whole = make({"AccessionNumber": "", "ScheduledProcedureStepSequence": [{}]})
    whole_answer = answer(cache, whole, entry)
    assert "PatientID" not in short and longer.PatientID == "P1"
    assert whole_answer.ScheduledProcedureStepSequence[0].ScheduledProcedureStepID == "S1"
    assert "PatientName" not in whole_answer
    assert len({id(short), id(longer), id(whole_answer)}) == 3


def test_each_character_set_and_policy_gets_its_own_answer() -> None:
    cache, entry = AnswerCache(10), make(ENTRY)
    names = []
    for charset, policy in [
        ("ISO_IR 192", "utf8"),
        ("ISO_IR 100", "utf8"),
        ("ISO_IR 100", "transliterate"),
        ("ISO_IR 100", "replace"),
        ("ISO_IR 192", "utf8"),
        ("ISO_IR 100", "transliterate"),
    ]:
        ds = sent(answer(cache, poll(), entry, character_set=charset, unrepresentable=policy))
        names.append((str(ds.PatientName), ds.SpecificCharacterSet))
    assert names == [
        ("Łódź^Zoë", "ISO_IR 192"),
        ("Łódź^Zoë", "ISO_IR 192"),  # Ł is not in ISO_IR 100: UTF-8 instead
        ("Lódz^Zoë", "ISO_IR 100"),
        ("?ód?^Zoë", "ISO_IR 100"),
        ("Łódź^Zoë", "ISO_IR 192"),
        ("Lódz^Zoë", "ISO_IR 100"),
    ]
    assert len(cache) == 4


def test_a_new_version_of_the_entry_gets_a_new_answer() -> None:
    cache = AnswerCache(10)
    old = make(ENTRY)
    first = answer(cache, poll(), old)
    new = make({**ENTRY, "PatientName": "ROE^JANE"})
    assert str(answer(cache, poll(), new).PatientName) == "ROE^JANE"
    assert answer(cache, poll(), old) is first


def test_an_entry_gone_is_a_miss_even_if_its_id_comes_back() -> None:
    cache = AnswerCache(10)
    answer(cache, poll(), make(ENTRY))  # the entry is dropped at once
    for n in range(50):  # new objects may reuse its id
        entry = make({**ENTRY, "AccessionNumber": f"B{n}"})
        assert answer(cache, poll(), entry).AccessionNumber == f"B{n}"


def test_the_bound_holds_and_zero_builds_every_time() -> None:
    cache = AnswerCache(3)
    entries = [make({**ENTRY, "AccessionNumber": f"A{n}"}) for n in range(5)]
    for entry in entries:
        answer(cache, poll(), entry)
    assert len(cache) == 3
    off, entry = AnswerCache(0), entries[0]
    assert answer(off, poll(), entry) is not answer(off, poll(), entry)
    assert len(off) == 0


def test_without_keep_an_answer_is_built_but_not_held() -> None:
    cache, entry = AnswerCache(10), make(ENTRY)
    unkept = answer(cache, poll(), entry, keep=False)
    assert len(cache) == 0
    kept = answer(cache, poll(), entry)
    assert kept is not unkept and len(cache) == 1
    assert answer(cache, poll(), entry, keep=False) is kept


def test_a_kept_answer_is_what_build_response_builds() -> None:
    cache, entry = AnswerCache(10), make(ENTRY)
    query = poll(PatientID="")
    for _ in range(2):
        kept = answer(cache, query, entry, character_set="ISO_IR 100")
        built = build_response(query, entry, character_set="ISO_IR 100")
        assert encode(kept, True, True) == encode(built, True, True)


def test_the_shape_is_keys_not_values() -> None:
    assert answer_shape(poll("CT1")) == answer_shape(poll("MR2"))
    assert answer_shape(poll()) != answer_shape(poll(PatientID=""))
    keyed = make(sps(ScheduledStationAETitle=""))
    whole = make({"ScheduledProcedureStepSequence": [{}]})
    assert answer_shape(keyed) != answer_shape(whole)
    with_charset = poll()
    with_charset.SpecificCharacterSet = "ISO_IR 100"  # never a return key
    assert answer_shape(with_charset) == answer_shape(poll())


def test_private_creators_are_part_of_the_shape() -> None:
    shapes = []
    for creator in ("ACME", "OTHER"):
        query = poll()
        query.private_block(0x0009, creator, create=True).add_new(0x01, "LO", "")
        shapes.append(answer_shape(query))
    assert shapes[0] != shapes[1]


def test_an_answer_is_kept_per_transfer_syntax() -> None:
    cache, entry, query = AnswerCache(10), make(ENTRY), poll()

    def get(syntax: tuple[bool, bool]) -> Dataset:
        return cache.answer(
            query, entry, shape=answer_shape(query), character_set="ISO_IR 192",
            unrepresentable="utf8", encoding=syntax,
        )  # fmt: skip

    implicit, explicit = get((True, True)), get((False, True))
    assert explicit is not implicit
    assert get((False, True)) is explicit
    assert encode(explicit, False, True) == encode(build_response(query, entry), False, True)
