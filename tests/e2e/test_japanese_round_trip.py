"""A Japanese site end to end: an ISO-2022-JP HL7 order in, an ISO 2022 IR 87 worklist out.

The order (JAHIS-style OMG^O19, MSH-18 ``~ISO IR87``) names the patient in kanji
and katakana (PID-5 repetitions with XPN-8 ``I`` and ``P``); the scanner's
profile asks for ``ISO 2022 IR 87``; its C-FIND answer keeps both name groups
and the kanji procedure description.
"""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import AE

from broker.mllp.client import MLLPClient, summarize_ack
from broker.settings import load_settings
from tests.broker_runner import MAPPINGS, running_broker
from tests.scu import ModalityWorklistInformationFind

ORDER = "\r".join(
    [
        "MSH|^~\\&|HIS123|SEND|GW|RCV|20261125083000||OMG^O19^OMG_O19|JP-1|P|2.5||||||~ISO IR87",
        "PID|0001||12345678^^^^PI||患者^太郎^^^^^L^I~カンジャ^タロウ^^^^^L^P||19501214|M",
        "ORC|NW|PLC-JP1^HIS|||SC",
        "OBR|1|PLC-JP1^HIS||XR01^胸部単純撮影^JJ1017||||||||||||||ACC-JP1|RP-JP1|SPS-JP1||||CR"
        "|||1^once^^20261126093000^^R",
    ]
).encode("iso2022_jp")


def test_kanji_and_kana_reach_a_japanese_scanner(tmp_path: Path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text(
        f'[broker]\ndata_dir = "{tmp_path / "data"}"\nmappings_dir = "{MAPPINGS}"\n'
        'hl7_host = "127.0.0.1"\nhl7_port = 0\ndicom_host = "127.0.0.1"\ndicom_port = 0\n'
        "admin_port = 0\n"
        '[scanners.CR1]\naddresses = ["127.0.0.1"]\ncharacter_set = "ISO 2022 IR 87"\n',
        encoding="utf-8",
    )
    with running_broker(load_settings(config_file=config, environ={})) as broker:
        assert broker.endpoints is not None
        with MLLPClient("127.0.0.1", broker.endpoints.hl7_port, timeout=30) as client:
            assert summarize_ack(client.send(ORDER)).code == "AA"
        ae = AE(ae_title="CR1")
        ae.add_requested_context(ModalityWorklistInformationFind)
        assoc = ae.associate(
            "127.0.0.1", broker.endpoints.dicom_port, ae_title=broker.endpoints.ae_title
        )
        assert assoc.is_established
        query = Dataset()
        query.PatientName = ""
        query.AccessionNumber = "ACC-JP1"
        query.RequestedProcedureDescription = ""
        try:
            answers = [
                ds
                for status, ds in assoc.send_c_find(query, ModalityWorklistInformationFind)
                if status is not None and status.Status == 0xFF00
            ]
        finally:
            assoc.release()
    (answer,) = answers
    assert answer is not None
    assert list(answer.SpecificCharacterSet) == ["", "ISO 2022 IR 87"]
    assert answer.PatientName.alphabetic == ""
    assert answer.PatientName.ideographic == "患者^太郎"
    assert answer.PatientName.phonetic == "カンジャ^タロウ"
    assert answer.RequestedProcedureDescription == "胸部単純撮影"
