"""TLS for the broker's listeners, as BCP 195 (RFC 9325) recommends.

TLS 1.2 or 1.3 only; on TLS 1.2 only ECDHE/DHE key exchange with AEAD ciphers
(AES-GCM, ChaCha20-Poly1305); no compression, no renegotiation. With a client CA
the peer must present a certificate it signed (mutual TLS); the names in that
certificate (subject CN and DNS subject alternative names) can then be bound to
a configured peer (``[hl7_senders.<name>] tls_names``).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from broker.errors import ConfigError

__all__ = ["BCP195_CIPHERS", "certificate_names", "server_context"]

# TLS 1.2 suites of RFC 9325 §4.2 (TLS 1.3 suites are all AEAD and set by OpenSSL).
BCP195_CIPHERS = (
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256"
)


def server_context(
    setting: str, cert: Path, key: Path, client_ca: Path | None = None
) -> ssl.SSLContext:
    """A server context for ``cert``/``key``; ConfigError names ``setting`` when the files
    cannot be used. With ``client_ca`` every client must present a certificate it signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(BCP195_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(setting, f"cannot use the certificate {cert} with key {key}: {e}") from e
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(setting, f"cannot read the client CA file {client_ca}: {e}") from e
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def certificate_names(peercert: Any) -> tuple[str, ...]:
    """The subject common names and DNS alternative names of a verified peer certificate
    (``SSLObject.getpeercert()``), lower case; empty when there is none."""
    if not isinstance(peercert, dict):
        return ()
    names: list[str] = []
    for rdn in peercert.get("subject", ()):
        names += [str(value) for key, value in rdn if key == "commonName"]
    names += [str(value) for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS"]
    return tuple(dict.fromkeys(name.lower() for name in names))
