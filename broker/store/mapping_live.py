"""The broker's active mapping set, swapped in when a new version is published.

At start-up the active version is read from Redis (seeded from the files of
``mappings/`` when the Redis has none) and validated; a broker whose active
version does not validate does not start. Afterwards a listener thread waits
on the version channel (Redis pub/sub) and, as a safety net for a missed
notice (a dropped connection), re-reads the active number every
``poll_seconds``. A new version is validated completely before it replaces the
current registry in one reference assignment: the router fetches the registry
once per message, so every message is mapped by exactly one version, and the
message log records its label (``v3:…``). A version that fails to validate
here (a broker older than the one that published it) is logged as an error
and the current one stays.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import redis

from broker.errors import BrokerError, ConfigError
from broker.mapping.registry import MappingRegistry
from broker.store.mapping_versions import (
    MappingVersion,
    MappingVersions,
    read_mapping_dir,
    seed_mapping_files,
    set_digest,
)

__all__ = ["LiveMappings"]

log = logging.getLogger(__name__)

_WAKE_SECONDS = 0.5  # how soon the listener notices stop()


class LiveMappings:
    """Holds the active :class:`MappingRegistry`; ``current`` is the router's registry source."""

    def __init__(
        self, versions: MappingVersions, seed_dir: Path | None, *, poll_seconds: float = 5.0
    ) -> None:
        self._versions = versions
        self._seed_dir = seed_dir
        self._poll = poll_seconds
        self._registry: MappingRegistry | None = None
        self._number: int | None = None
        self._rejected: int | None = None  # a version that did not validate here
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pubsub: redis.client.PubSub | None = None

    def __repr__(self) -> str:
        return f"LiveMappings(version={self._number}, seed_dir={str(self._seed_dir)!r})"

    @property
    def number(self) -> int | None:
        """The active version's number."""
        return self._number

    def current(self) -> MappingRegistry:
        """The registry of the active version (one object per version)."""
        if self._registry is None:
            raise BrokerError("the mappings are not loaded yet")
        return self._registry

    def load(self) -> MappingVersion:
        """Read (or seed) and validate the active version; raises ConfigError if it is invalid."""
        version = self._versions.active()
        if version is None:
            files, source = seed_mapping_files(self._seed_dir)
            version = self._versions.seed(files, source=source).version
            log.info("mappings: %s seeded from %s", version.label, source)
        self._install(version)
        seed_dir = self._seed_dir
        if (
            seed_dir is not None
            and seed_dir.is_dir()
            and (set_digest(read_mapping_dir(seed_dir)) != version.digest)
        ):
            log.warning(
                "mappings: the files in %s differ from the active %s, which is what the broker "
                "uses; 'mwl-broker mapping diff --dir %s' shows how, 'mapping publish' makes "
                "the files active, 'mapping export' writes the active version to the files",
                seed_dir,
                version.label,
                seed_dir,
            )
        return version

    def _install(self, version: MappingVersion) -> None:
        registry = MappingRegistry.from_texts(
            version.files,
            label=f"v{version.number}",
            source=f"mapping {version.label}",
            number=version.number,
        )
        self._registry, self._number = registry, version.number

    def start(self) -> None:
        """Listen for published versions (after :meth:`load`)."""
        self._pubsub = self._versions.subscribe()
        self._thread = threading.Thread(target=self._listen, name="mapping-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening; returns within about a second."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_WAKE_SECONDS + 5)
            self._thread = None

    def refresh(self) -> bool:
        """Switch to the active version if it changed; True when it switched."""
        number = self._versions.active_number()
        if number is None or number in (self._number, self._rejected):
            return False
        version = self._versions.get(number)
        if version is None:
            return False
        try:
            self._install(version)
        except ConfigError as e:
            log.error(
                "mappings: %s does not validate here, v%s stays active: %s: %s",
                version.label,
                self._number,
                e.setting,
                e.message,
            )
            self._rejected = number  # not tried again and again
            return False
        log.info(
            "mappings: now %s, published by %s: %s",
            version.label,
            version.author or "?",
            version.comment or "(no comment)",
        )
        return True

    def _listen(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is None:
            return
        next_poll = time.monotonic() + self._poll
        try:
            while not self._stop.is_set():
                try:
                    notice = pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=_WAKE_SECONDS
                    )
                    if notice is not None or time.monotonic() >= next_poll:
                        next_poll = time.monotonic() + self._poll
                        self.refresh()
                except redis.RedisError as e:
                    log.warning("mappings: version channel unavailable (%s); retrying", e)
                    self._stop.wait(self._poll)
                except Exception:
                    log.exception("mappings: reload failed; the current version stays")
                    self._stop.wait(self._poll)
        finally:
            pubsub.close()
