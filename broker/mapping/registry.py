"""The set of active mappings, keyed by HL7 message type (``"ORM^O01"``).

File-based for now: every ``*.yaml`` file of one directory. A message type
may be claimed by one file only, so which mapping applies is never a matter
of file order. Three kinds of file live side by side: order mappings
(``MappingSpec``, the default), patient mappings (``kind: patient``,
``PatientSpec``, for ADT events) and at most one outbound mapping (``kind:
outbound``, ``OutboundSpec``: the status messages back to the RIS; it handles no
received type).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from broker.errors import ConfigError
from broker.mapping.outbound_spec import OutboundSpec
from broker.mapping.patient_spec import (
    AnySpec,
    PatientSpec,
    load_any_mapping,
    load_any_mapping_text,
)
from broker.mapping.spec import MappingSpec

__all__ = ["MappingRegistry"]


class MappingRegistry:
    """Mappings by message type, with a ``version`` that changes when any file changes."""

    def __init__(self, specs: Iterable[AnySpec], *, source: str = "mappings") -> None:
        self._specs = tuple(specs)
        outbound = [spec for spec in self._specs if isinstance(spec, OutboundSpec)]
        if len(outbound) > 1:
            names = " and ".join(spec.source for spec in outbound)
            raise ConfigError(source, f"one outbound mapping per set: {names} are both one")
        self._outbound = outbound[0] if outbound else None
        by_type: dict[str, AnySpec] = {}
        for spec in self._specs:
            for message_type in sorted(spec.message_types):
                other = by_type.get(message_type)
                if other is not None:
                    raise ConfigError(
                        source,
                        f"{message_type} is claimed by both {other.source} and {spec.source}",
                    )
                by_type[message_type] = spec
        self._by_type = MappingProxyType(by_type)
        digest = hashlib.sha256()
        for spec in sorted(self._specs, key=lambda s: s.source):
            digest.update(f"{spec.source}\0{spec.version}\0".encode())
        self._version = digest.hexdigest()[:12]
        self._number: int | None = None

    @classmethod
    def load(cls, directory: Path) -> MappingRegistry:
        """Load every ``*.yaml`` file of ``directory`` (sorted by name)."""
        if not directory.is_dir():
            raise ConfigError(str(directory), "the mappings directory does not exist")
        files = sorted(directory.glob("*.yaml"))
        return cls((load_any_mapping(f) for f in files), source=str(directory))

    @classmethod
    def from_texts(
        cls,
        files: Mapping[str, str],
        *,
        label: str | None = None,
        source: str = "mapping set",
        number: int | None = None,
    ) -> MappingRegistry:
        """Validate a whole mapping set (file name → YAML text), as published in Redis.

        ``label`` (e.g. ``v3``) prefixes every mapping's version, so the message
        log records which published set mapped a message; ``number`` is the published
        version's number (3), which every worklist entry it maps keeps.
        """
        specs = []
        for name in sorted(files):
            spec = load_any_mapping_text(name, files[name])
            if label is not None:
                spec = dataclasses.replace(spec, version=f"{label}:{spec.version}")
            specs.append(spec)
        registry = cls(specs, source=source)
        if label is not None:
            registry._version = label
        registry._number = number
        return registry

    @property
    def version(self) -> str:
        """Short sha256 over every file's name and bytes."""
        return self._version

    @property
    def number(self) -> int | None:
        """The published version's number (``broker.store.mapping_versions``); None for a
        set not read from the published versions (files, an edited preview)."""
        return self._number

    @property
    def specs(self) -> tuple[AnySpec, ...]:
        """Every loaded mapping."""
        return self._specs

    @property
    def outbound(self) -> OutboundSpec | None:
        """The outbound mapping (``kind: outbound``), None when the set has none."""
        return self._outbound

    def for_message(self, message_type: str) -> MappingSpec | None:
        """The order mapping for ``"ORM^O01"``-style ``message_type``, or None."""
        spec = self._by_type.get(message_type)
        return spec if isinstance(spec, MappingSpec) else None

    def for_patient_message(self, message_type: str) -> PatientSpec | None:
        """The patient mapping for an ``"ADT^A08"``-style ``message_type``, or None."""
        spec = self._by_type.get(message_type)
        return spec if isinstance(spec, PatientSpec) else None

    def supported_types(self) -> frozenset[str]:
        """Every message type some mapping handles."""
        return frozenset(self._by_type)
