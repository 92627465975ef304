"""DICOMweb Search Transaction answers as bytes, and the media type they are sent in.

``negotiate`` picks the response's media type from the request's Accept header (PS3.18
§8.7, §14.1.3: ``application/dicom+json`` the default, ``application/dicom+xml`` in
``multipart/related``) or says why none fits (HTTP 406). ``render`` turns the answers
into the chosen form: one DICOM JSON array (PS3.18 Annex F), or one Native DICOM Model
document per answer in a ``multipart/related`` body (PS3.18 §8.7.3.2; RFC 2387).
No answers is an empty array (or a multipart body of no parts); whether to send 204
No Content instead is the route's choice.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset

from broker.common.jsontext import dumps
from broker.dicom.native_xml import to_xml

__all__ = [
    "DICOM_JSON",
    "DICOM_XML",
    "MULTIPART_XML",
    "NotAcceptable",
    "Rendered",
    "more_results_warning",
    "negotiate",
    "render",
]

DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"
MULTIPART_XML = f'multipart/related; type="{DICOM_XML}"'
_JSON_ALIASES = frozenset({DICOM_JSON, "application/json", "application/*", "*/*"})
_MAX_ACCEPT = 4096  # an Accept header longer than this is refused, not parsed


class NotAcceptable(ValueError):
    """No media type the Search Transaction answers in is acceptable (HTTP 406);
    ``reason`` says what was asked and what is offered."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Range:
    kind: str  # type/subtype, lower case
    params: dict[str, str]
    q: float


def _parse_range(text: str) -> _Range | None:
    """One media range of an Accept header (RFC 9110 §12.5.1); None if malformed."""
    kind, *raw = (part.strip() for part in text.split(";"))
    if kind.count("/") != 1:
        return None
    params: dict[str, str] = {}
    for param in raw:
        name, eq, value = param.partition("=")
        if not eq:
            return None
        params[name.strip().lower()] = value.strip().strip('"').lower()
    try:
        q = float(params.pop("q", "1"))
    except ValueError:
        return None
    if not 0 <= q <= 1:
        return None
    return _Range(kind.lower(), params, q)


def _choice(r: _Range) -> str | None:
    """The media type this range selects, if any (PS3.18 §8.7.3, §14.1.3)."""
    if r.kind in _JSON_ALIASES:
        return DICOM_JSON
    if r.kind == DICOM_XML:
        return MULTIPART_XML  # several answers: one XML document each, so multipart
    if r.kind in ("multipart/related", "multipart/*"):
        wanted = r.params.get("type", DICOM_XML)
        return MULTIPART_XML if wanted == DICOM_XML else None
    return None


def negotiate(accept: str | None) -> str:
    """The media type to answer in for this Accept header (absent or empty: DICOM JSON);
    ``NotAcceptable`` when it allows none of ours (RFC 9110 §12.5.1, PS3.18 §8.7)."""
    if accept is None or not accept.strip():
        return DICOM_JSON
    if len(accept) > _MAX_ACCEPT:
        raise NotAcceptable(f"the Accept header is longer than {_MAX_ACCEPT} characters")
    best: tuple[float, int, str] | None = None
    for index, text in enumerate(accept.split(",")):
        r = _parse_range(text)
        if r is None or r.q == 0:
            continue
        chosen = _choice(r)
        if chosen is not None and (best is None or r.q > best[0]):
            best = (r.q, index, chosen)
    if best is None:
        raise NotAcceptable(
            f"none of the Accept header's media types is offered: {DICOM_JSON} (the default) "
            f"or {MULTIPART_XML}"
        )
    return best[2]


@dataclass(frozen=True)
class Rendered:
    """A response body and its Content-Type."""

    body: bytes
    content_type: str


def to_json(answers: Sequence[Dataset]) -> bytes:
    """DICOM JSON (PS3.18 F.2): one array of the answers' JSON objects, UTF-8."""
    return dumps([ds.to_json_dict() for ds in answers]).encode("utf-8")


def to_multipart(answers: Sequence[Dataset], boundary: str | None = None) -> Rendered:
    """One ``application/dicom+xml`` part per answer (PS3.18 §8.7.3.2, RFC 2387 / 2046)."""
    boundary = boundary or secrets.token_hex(16)
    documents = [to_xml(ds) for ds in answers]
    if any(boundary.encode() in doc for doc in documents):
        raise ValueError("the boundary occurs in a part")
    delimiter = f"--{boundary}\r\n".encode()
    body = b"".join(
        delimiter + f"Content-Type: {DICOM_XML}\r\n\r\n".encode() + doc + b"\r\n"
        for doc in documents
    )
    body += f"--{boundary}--\r\n".encode()
    return Rendered(body, f'{MULTIPART_XML}; boundary="{boundary}"')


def render(answers: Sequence[Dataset], media_type: str, boundary: str | None = None) -> Rendered:
    """The answers in ``media_type``, as ``negotiate`` chose it."""
    if media_type == DICOM_JSON:
        return Rendered(to_json(answers), DICOM_JSON)
    if media_type == MULTIPART_XML:
        return to_multipart(answers, boundary)
    raise ValueError(f"not a media type of the Search Transaction: {media_type}")


def more_results_warning(service: str) -> str:
    """The Warning header of a page past which more entries matched (PS3.18 §8.3.4.5;
    RFC 7234 §5.5: code 299, the agent, a quoted text); ``service`` is the base URL."""
    agent = "".join(c for c in service if c.isprintable() and c not in ' "') or "-"
    return f'299 {agent} "There are additional results that can be requested"'
