"""Mapping sets in Redis: numbered versions with their history, one of them active.

A *mapping set* is every mapping file of a broker (file name → YAML text).
Publishing a set makes it a new version (1, 2, 3…, never reused) with who,
when and why, and makes it the active one on every broker sharing the Redis:
one Lua call writes the version, moves the ``active`` pointer and publishes
the new number on a channel (``broker.store.mapping_live`` listens), so the switch
is atomic and every broker finds the same set. Rolling back publishes an
earlier version's files again as a new version, so the history only grows.
Every new version, and every publish refused because another came first, is on
the audit trail (``broker.audit``): number, author, file names (and those added to or
deleted from the version it replaced), not the comment; the
record's user is the console user who did it (a command's is filled in by its sink).

The files of ``mappings_dir`` (else the default set shipped in the package,
``broker.default_mappings``) seed version 1 when the Redis has none; after
that the Redis holds the truth, and ``export`` writes it back to files.

Keys (``{p}`` is the prefix): ``{p}:mapping:seq`` (version counter),
``{p}:mapping:v:{n}`` (hash: files as JSON, author, comment, created, digest,
based_on), ``{p}:mapping:history`` (sorted set of numbers), ``{p}:mapping:active``;
channel ``{p}:mapping:changed``.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import redis

from broker.audit.events import AuditEvent, AuditType, Outcome
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.common import jsontext
from broker.common.clock import SYSTEM_CLOCK, Clock
from broker.errors import BrokerError, ConflictError, StoreError
from broker.mapping.registry import MappingRegistry
from broker.store import scripts
from broker.store.keys import KeySchema
from broker.store.scripts import ScriptRunner

__all__ = [
    "PACKAGED_SOURCE",
    "MappingVersion",
    "MappingVersions",
    "PublishResult",
    "check_file_name",
    "diff",
    "packaged_mapping_files",
    "read_mapping_dir",
    "seed_mapping_files",
    "set_digest",
]

PACKAGED_MAPPINGS = "broker.default_mappings"
PACKAGED_SOURCE = "the default mappings shipped with mwl-broker"
_PUBLISH = scripts.load("mapping_publish")


@dataclass(frozen=True)
class MappingVersion:
    """One published mapping set."""

    number: int
    files: Mapping[str, str]  # file name -> YAML text
    author: str
    comment: str
    created: float  # epoch seconds
    digest: str  # short sha256 over file names and texts
    based_on: int | None  # the version that was active when this one was published

    @property
    def label(self) -> str:
        """How messages and logs name it: ``v3 (a1b2c3d4e5f6)``."""
        return f"v{self.number} ({self.digest})"


@dataclass(frozen=True)
class PublishResult:
    """What a publish did: a new version, or none because the active one has these files."""

    version: MappingVersion
    created: bool


def set_digest(files: Mapping[str, str]) -> str:
    """Short sha256 over the sorted file names and texts: equal sets, equal digests."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return h.hexdigest()[:12]


def read_mapping_dir(directory: Path) -> dict[str, str]:
    """Every ``*.yaml`` file of ``directory``: name → text (UTF-8)."""
    if not directory.is_dir():
        raise BrokerError(f"{directory}: the mappings directory does not exist")
    files = {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            files[path.name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise BrokerError(f"{path}: cannot read the mapping file: {e}") from e
    return files


_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.yaml")


def check_file_name(name: str) -> str:
    """``name`` if it is a plain mapping file name (``orders.yaml``), else BrokerError.

    A version's file names are written to disk by ``mapping export``: a name with a
    path separator, ``..`` or a leading dot could write outside the target directory.
    """
    if not _FILE_NAME.fullmatch(name) or ".." in name:
        shown = name.encode("unicode_escape").decode("ascii")[:120]
        raise BrokerError(
            f"mapping file name {shown!r} is not allowed: a name is letters, digits, '.', "
            "'_' or '-', ending in .yaml, with no directory part"
        )
    return name


def packaged_mapping_files() -> dict[str, str]:
    """The default mapping set shipped inside the package (the project's ``mappings/``)."""
    folder = resources.files(PACKAGED_MAPPINGS)
    return {
        item.name: item.read_text(encoding="utf-8")
        for item in sorted(folder.iterdir(), key=lambda item: item.name)
        if item.name.endswith(".yaml") and item.is_file()
    }


def seed_mapping_files(directory: Path | None) -> tuple[dict[str, str], str]:
    """The files that seed version 1 and where they came from: ``directory`` when the
    site set ``mappings_dir``, else the packaged defaults."""
    if directory is None:
        return packaged_mapping_files(), PACKAGED_SOURCE
    return read_mapping_dir(directory), str(directory)


class MappingVersions:
    """The versions of the mapping set kept in one Redis."""

    def __init__(
        self,
        client: redis.Redis,
        keys: KeySchema | None = None,
        audit: AuditSink = NO_AUDIT,
        scripts: ScriptRunner | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._redis = client
        self._clock = clock
        self._keys = keys or KeySchema()
        self._audit = audit
        self._scripts = scripts or ScriptRunner(client)
        p = self._keys.prefix
        self._seq = f"{p}:mapping:seq"
        self._version_prefix = f"{p}:mapping:v:"
        self._history = f"{p}:mapping:history"
        self._active = f"{p}:mapping:active"
        self.channel = f"{p}:mapping:changed"

    def __repr__(self) -> str:
        return f"MappingVersions(prefix={self._keys.prefix!r})"

    # -- reads ------------------------------------------------------------

    def active_number(self) -> int | None:
        """The active version's number, or None before the first publish."""
        raw = self._call(self._redis.get, self._active)
        return int(raw) if raw else None

    def get(self, number: int) -> MappingVersion | None:
        """One version, or None if there is no such version."""
        raw = self._call(self._redis.hgetall, f"{self._version_prefix}{number}")
        if not raw:
            return None
        f = {k.decode(): v.decode() for k, v in raw.items()}
        return MappingVersion(
            number=number,
            files=MappingProxyType(jsontext.loads(f["files"])),
            author=f.get("author", ""),
            comment=f.get("comment", ""),
            created=float(f.get("created", "0")),
            digest=f.get("digest", ""),
            based_on=int(f["based_on"]) if f.get("based_on") else None,
        )

    def active(self) -> MappingVersion | None:
        """The active version, or None before the first publish."""
        number = self.active_number()
        return None if number is None else self.get(number)

    def history(self, limit: int = 50, before: int | None = None) -> Iterator[MappingVersion]:
        """Versions, newest first; ``before``: only those numbered below it (the next page)."""
        top = f"({before}" if before is not None else "+inf"
        numbers = self._call(
            self._redis.zrevrangebyscore, self._history, top, "-inf", start=0, num=max(limit, 1)
        )
        for raw in numbers:
            version = self.get(int(raw))
            if version is not None:
                yield version

    def subscribe(self) -> redis.client.PubSub:
        """A subscription to the channel that announces each newly active version."""
        pubsub: redis.client.PubSub = self._redis.pubsub()
        self._call(pubsub.subscribe, self.channel)
        return pubsub

    # -- writes -----------------------------------------------------------

    def publish(
        self,
        files: Mapping[str, str],
        *,
        author: str,
        comment: str,
        expect: int | None = None,
        user: str = "",
    ) -> PublishResult:
        """Validate ``files`` as a whole set, then make them the active version.

        Raises :class:`broker.errors.ConfigError` (nothing published) when the
        set does not validate. ``expect`` is the version the files were based
        on: if another publish happened meanwhile the call is refused, so no
        one's change is overwritten unseen.
        """
        MappingRegistry.from_texts(files)  # raises ConfigError naming file, line and rule
        return self._write(files, author=author, comment=comment, expect=expect, user=user)

    def seed(self, files: Mapping[str, str], *, source: str) -> PublishResult:
        """Version 1 from the files of ``source``, unless the Redis already has a version."""
        MappingRegistry.from_texts(files)
        comment = f"seeded from {source}"
        return self._write(files, author="mwl-broker", comment=comment, kind=AuditType.MAPPING_SEED)

    def rollback(
        self,
        number: int,
        *,
        author: str,
        comment: str,
        expect: int | None = None,
        user: str = "",
    ) -> PublishResult:
        """Publish the files of version ``number`` again, as a new version (``expect``: as
        :meth:`publish`)."""
        old = self.get(number)
        if old is None:
            raise BrokerError(f"there is no mapping version {number}")
        note = f"rollback to v{number}" + (f": {comment}" if comment else "")
        MappingRegistry.from_texts(old.files)
        kind = AuditType.MAPPING_ROLLBACK
        return self._write(
            old.files,
            author=author,
            comment=note,
            expect=expect,
            kind=kind,
            restores=number,
            user=user,
        )

    def _write(
        self,
        files: Mapping[str, str],
        *,
        author: str,
        comment: str,
        expect: int | None = None,
        kind: AuditType = AuditType.MAPPING_PUBLISH,
        restores: int | None = None,
        user: str = "",
    ) -> PublishResult:
        for name in files:
            check_file_name(name)
        body: dict[str, Any] = {
            "channel": self.channel,
            "files": jsontext.canonical(dict(files)),
            "author": author,
            "comment": comment,
            "created": repr(self._clock.now()),
            "digest": set_digest(files),
            "only_if_empty": kind is AuditType.MAPPING_SEED,
        }
        if expect is not None:
            body["expect"] = str(expect)
        keys = [self._seq, self._history, self._active, self._version_prefix]
        args = [jsontext.dumps(body)]
        tag, number = (
            v.decode() if isinstance(v, bytes) else str(v)
            for v in self._call(self._scripts.run, _PUBLISH, keys, args)
        )
        files_named = sorted(files)
        if tag == "moved":
            self._audit.record(
                AuditEvent(
                    kind,
                    Outcome.REFUSED,
                    user=user,
                    reason=f"the active version is v{number or '(none)'}, not v{expect}",
                    details={"author": author, "files": files_named},
                )
            )
            raise ConflictError(
                f"the active mapping version is now v{number or '(none)'}, not v{expect}: "
                "someone published meanwhile; look at 'mapping history' and try again"
            )
        version = self.get(int(number))
        if version is None:  # pragma: no cover - the script wrote it in the same call
            raise StoreError(f"mapping version {number} vanished")
        if tag == "new":
            details = {"author": author, "files": files_named, "based_on": version.based_on}
            details.update(self._added_deleted(files, version.based_on))
            if restores is not None:
                details["restores"] = restores
            event = AuditEvent(kind, user=user, target=f"v{number}", details=details)
            self._audit.record(event)
        return PublishResult(version, created=tag == "new")

    def _added_deleted(self, files: Mapping[str, str], based_on: int | None) -> dict[str, Any]:
        """The file names ``files`` adds to and deletes from version ``based_on`` (names
        only, for the audit record; none when nothing was added or deleted)."""
        before = self.get(based_on) if based_on is not None else None
        if before is None:
            return {}
        added, deleted = (
            sorted(set(files) - set(before.files)),
            sorted(set(before.files) - set(files)),
        )
        return {k: v for k, v in (("added", added), ("deleted", deleted)) if v}

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (redis.RedisError, StoreError) as e:
            raise StoreError(f"mapping versions unavailable: {e}") from e


def diff(old: Mapping[str, str], new: Mapping[str, str], old_label: str, new_label: str) -> str:
    """Unified diff of two mapping sets, file by file ("" when they are equal)."""
    out: list[str] = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        out.extend(
            difflib.unified_diff(
                (a or "").splitlines(keepends=True),
                (b or "").splitlines(keepends=True),
                fromfile=f"{old_label}/{name}" if a is not None else "/dev/null",
                tofile=f"{new_label}/{name}" if b is not None else "/dev/null",
            )
        )
    return "".join(line if line.endswith("\n") else line + "\n" for line in out)
