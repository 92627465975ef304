"""The router's dispatch, pure: decode with the sender's settings, the header policy, the
mapping for the message type.

Intake (:class:`broker.services.routing.HL7Router`), reprocessing and the mapping
preview (:mod:`broker.services.preview`) all go through one :class:`Dispatcher`, so a
preview reads the bytes exactly as the live broker does:

- **decode** (HL7 v2.5.1 §2.14.9.18): MSH-18's charset, else the charset configured
  for MSH-3/MSH-4 (``hl7_sender_charsets`` and the ``application``/``facility`` of
  the ``[hl7_senders.<name>]`` tables), else the charset of the ``[hl7_senders]``
  table whose ``addresses`` hold the peer's address, else ``hl7_default_charset``;
  MSH-7 values without an offset are read in the zone found the same way
  (:class:`broker.hl7.message.MessageDecoder` does the rest);
- **the header policy** (``broker.hl7.validate``): the types some mapping handles, and
  the site's processing IDs, versions and accepted senders (the preview checks the
  type only);
- **the mapping**: the patient mapping of the type (ADT, IHE RAD-1/RAD-12), else its
  order mapping (IHE RAD-4/RAD-13).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

from broker.common.netaddr import peer_ip
from broker.dicom.profiles import site_zone
from broker.hl7.message import MessageDecoder, ParsedMessage
from broker.hl7.senders import HL7Sender, SenderSet, peer_address
from broker.hl7.validate import HeaderPolicy
from broker.mapping.patient_spec import PatientSpec
from broker.mapping.registry import MappingRegistry
from broker.mapping.spec import MappingSpec

__all__ = ["Dispatcher", "Route", "SitePolicy"]


class Route(NamedTuple):
    """The mapping a message goes to: an order mapping or a patient mapping (one is None)."""

    order: MappingSpec | None
    patient: PatientSpec | None


@dataclass(frozen=True)
class SitePolicy:
    """The site's header settings (``hl7_processing_ids``, ``hl7_versions``,
    ``hl7_accepted_senders``); empty ``versions``/``accepted_senders``: any."""

    processing_ids: frozenset[str] = frozenset({"P"})
    versions: frozenset[str] = frozenset()
    accepted_senders: frozenset[str] = frozenset()


class Dispatcher:
    """Decode, the header policy and the mapping, as intake and preview both need them."""

    def __init__(
        self,
        decoder: MessageDecoder | None = None,
        senders: SenderSet | None = None,
        site: SitePolicy | None = None,
    ) -> None:
        self.decoder = decoder or MessageDecoder()
        self.senders = senders or SenderSet()
        self.site = site or SitePolicy()
        self._by_sender = {
            s.name: _sender_decoder(self.decoder, s)
            for s in self.senders.senders
            if s.charset or s.timezone
        }

    def __repr__(self) -> str:
        return f"Dispatcher(senders={len(self.senders.senders)}, site={self.site!r})"

    def decoder_for(self, peer: str) -> MessageDecoder:
        """The decoder for messages from ``peer``: ``host:port`` or ``[v6]:port`` as the MLLP
        server names it, a bare address, or a label such as ``"reprocess of message 7"``
        (which no sender's table holds)."""
        if not self._by_sender or not peer:
            return self.decoder
        address = peer if peer_ip(peer) is not None else peer_address(peer)  # "::1" too
        sender = self.senders.sender_for(address)
        if sender is None:
            return self.decoder
        return self._by_sender.get(sender.name, self.decoder)

    def decode(self, raw: bytes, peer: str) -> ParsedMessage:
        """``raw`` as received from ``peer``; raises ``HL7Error`` (``broker.hl7.message``)."""
        return self.decoder_for(peer).decode(raw)

    def policy(self, registry: MappingRegistry) -> HeaderPolicy:
        """The header policy intake applies: the mapped types and the site's settings."""
        site = self.site
        types = registry.supported_types()
        return HeaderPolicy(types, site.processing_ids, site.versions, site.accepted_senders)

    @staticmethod
    def type_policy(registry: MappingRegistry, msg: ParsedMessage) -> HeaderPolicy:
        """The preview's: the message type only (MSH-11, MSH-12 and the senders not checked)."""
        return HeaderPolicy(registry.supported_types(), frozenset({msg.processing_id}))

    @staticmethod
    def route(msg: ParsedMessage, registry: MappingRegistry) -> Route:
        """The mapping for ``msg``'s type: its patient mapping, else its order mapping. After
        the header check, one of the two is set (the check refuses a type with none)."""
        patient = registry.for_patient_message(msg.message_type)
        if patient is not None:
            return Route(None, patient)
        return Route(registry.for_message(msg.message_type), None)


def _sender_decoder(decoder: MessageDecoder, sender: HL7Sender) -> MessageDecoder:
    """``decoder`` with the sender's charset and zone in place of the defaults: the keys
    of MSH-3/MSH-4 still come first (``MessageDecoder``), then the sender's, then the
    site's."""
    charset = sender.charset or decoder.default_charset
    zone = site_zone(sender.timezone) if sender.timezone else decoder.local_zone
    return replace(decoder, default_charset=charset, local_zone=zone)
