"""Raw DICOM upper-layer PDUs for tests that play a misbehaving peer on a plain socket.

Built with pynetdicom's own encoders (PS3.8 9.3), so that what a test sends is a
well-formed request unless the test makes it otherwise.
"""

from __future__ import annotations

import socket
import struct
from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom.dimse_messages import C_ECHO_RQ, C_FIND_RQ, DIMSEMessage
from pynetdicom.dimse_primitives import C_ECHO, C_FIND
from pynetdicom.dsutils import encode
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ, P_DATA_TF
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context

VERIFICATION = "1.2.840.10008.1.1"
MWL_FIND = "1.2.840.10008.5.1.4.31"
IMPLICIT_LITTLE = "1.2.840.10008.1.2"
FIND_CONTEXT, ECHO_CONTEXT = 1, 3  # the presentation context IDs of associate_rq
HEADER = struct.Struct(">BxL")


def associate_rq(calling: str, called: str, max_length: int = 16382) -> bytes:
    """An A-ASSOCIATE-RQ for MWL C-FIND and Verification, Implicit VR Little Endian."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = calling
    primitive.called_ae_title = called
    contexts = []
    for context_id, sop_class in ((FIND_CONTEXT, MWL_FIND), (ECHO_CONTEXT, VERIFICATION)):
        context = build_context(sop_class, [IMPLICIT_LITTLE])
        context.context_id = context_id
        contexts.append(context)
    primitive.presentation_context_definition_list = contexts
    maximum = MaximumLengthNotification()
    maximum.maximum_length_received = max_length
    implementation = ImplementationClassUIDNotification()
    implementation.implementation_class_uid = "1.2.826.0.1.3680043.9.7433.1"
    primitive.user_information = [maximum, implementation]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


def _p_data(message: DIMSEMessage, context_id: int, max_length: int) -> bytes:
    return b"".join(
        bytes(P_DATA_TF(part).encode()) for part in message.encode_msg(context_id, max_length)
    )


def c_find_rq(identifier: Dataset, message_id: int = 1, max_length: int = 16382) -> bytes:
    """The P-DATA-TF PDUs of an MWL C-FIND request."""
    request = C_FIND()
    request.MessageID = message_id
    request.AffectedSOPClassUID = MWL_FIND
    request.Priority = 2
    encoded = encode(identifier, True, True)
    assert encoded is not None
    request.Identifier = BytesIO(encoded)
    message = C_FIND_RQ()
    message.primitive_to_message(request)
    return _p_data(message, FIND_CONTEXT, max_length)


def c_echo_rq(message_id: int = 1) -> bytes:
    """The P-DATA-TF PDU of a C-ECHO request."""
    request = C_ECHO()
    request.MessageID = message_id
    request.AffectedSOPClassUID = VERIFICATION
    message = C_ECHO_RQ()
    message.primitive_to_message(request)
    return _p_data(message, ECHO_CONTEXT, 16382)


def read_pdu(sock: socket.socket) -> tuple[int, bytes]:
    """One PDU from the broker: its type and whole encoding; (0, b"") when it closed."""
    header = _exactly(sock, HEADER.size)
    if len(header) < HEADER.size:
        return 0, b""
    pdu_type, length = HEADER.unpack(header)
    return pdu_type, header + _exactly(sock, length)


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def maximum_length(associate_ac: bytes) -> int:
    """The Maximum Length Received an A-ASSOCIATE-AC announces (PS3.8 D.1)."""
    pdu = A_ASSOCIATE_AC()
    pdu.decode(associate_ac)
    assert pdu.user_information is not None
    length = pdu.user_information.maximum_length
    assert length is not None
    return int(length)


def associated(sock: socket.socket, calling: str, called: str) -> int:
    """Send an A-ASSOCIATE-RQ on ``sock`` and read the A-ASSOCIATE-AC; the maximum length
    the acceptor announced in it."""
    sock.sendall(associate_rq(calling, called))
    pdu_type, pdu = read_pdu(sock)
    assert pdu_type == 0x02, f"no A-ASSOCIATE-AC: PDU type {pdu_type:#x}"
    return maximum_length(pdu)
