"""Mapping versions as an admin works with them: check, preview, history, diff, publish,
roll back, export.

Checking works on files alone (:func:`check_mapping_files`); the rest works on the
versions kept in the broker's Redis (``broker.store.mapping_versions``), also while
brokers run: a published version is active on every broker at once. A preview maps
messages with the active version (or with it and edited files put in place of
theirs) through the router's own dispatch (``broker.services.preview``); nothing is
stored.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from broker.errors import BrokerError, ConfigError
from broker.hl7.files import split_messages
from broker.mapping.registry import MappingRegistry
from broker.services.dispatch import Dispatcher
from broker.services.mapping_changes import (
    FileProblem,
    MappingChanges,
    apply_changes,
    check_changes,
    check_mapping_texts,
)
from broker.services.preview import Preview, preview
from broker.store.mapping_versions import (
    MappingVersion,
    MappingVersions,
    PublishResult,
    check_file_name,
    diff,
    read_mapping_dir,
    seed_mapping_files,
)

__all__ = [
    "ExportReport",
    "FileCheck",
    "FileProblem",
    "MappingChanges",
    "MappingCheck",
    "MappingDiff",
    "MappingPreview",
    "MappingService",
    "check_mapping_files",
    "check_mapping_texts",
    "read_texts",
]


@dataclass(frozen=True)
class FileCheck:
    """One mapping file checked alone: its mapping's name and types, or what is wrong."""

    path: Path
    name: str = ""
    message_types: tuple[str, ...] = ()
    error: str | None = None  # "cannot read: …" or "<setting>: <message>"


@dataclass(frozen=True)
class MappingCheck:
    """Each file alone, then (when each is valid) the files as one set."""

    files: tuple[FileCheck, ...]
    set_error: str | None = None

    @property
    def failed(self) -> bool:
        return self.set_error is not None or any(f.error is not None for f in self.files)


@dataclass(frozen=True)
class MappingDiff:
    """A unified diff of two mapping sets; ``old`` is "" when ``new`` is the first version."""

    old: str
    new: str
    text: str


@dataclass(frozen=True)
class MappingPreview:
    """What each message of a file would become, with the set that mapped it."""

    label: str  # "v3", "v3 with edited.yaml", or the seed directory
    results: tuple[Preview, ...]

    @property
    def refused(self) -> int:
        return sum(r.error is not None for r in self.results)


@dataclass(frozen=True)
class ExportReport:
    """What an export did, file by file: ``unchanged``, ``written``, ``updated``, and for
    files of the directory not in the version ``deleted`` (with prune) or ``kept``."""

    version: MappingVersion
    target: Path
    files: tuple[tuple[Path, str], ...]


def read_texts(paths: Sequence[Path]) -> dict[Path, str]:
    """Mapping files as given (path → UTF-8 text); BrokerError names one that cannot be read."""
    texts = {}
    for path in paths:
        try:
            texts[path] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise BrokerError(f"{path}: cannot read: {e}") from e
    return texts


def check_mapping_files(paths: Sequence[Path]) -> MappingCheck:
    """Validate mapping files, alone and as one set; no Redis needed."""
    files: dict[str, str] = {}
    checks = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
            registry = MappingRegistry.from_texts({path.name: text})
        except (OSError, UnicodeDecodeError) as e:
            checks.append(FileCheck(path, error=f"{path}: cannot read: {e}"))
            continue
        except ConfigError as e:
            checks.append(FileCheck(path, error=f"{e.setting}: {e.message}"))
            continue
        files[path.name] = text
        (spec,) = registry.specs
        checks.append(FileCheck(path, spec.name, tuple(sorted(spec.message_types))))
    result = MappingCheck(tuple(checks))
    if not result.failed and len(files) > 1:
        try:
            MappingRegistry.from_texts(files)
        except ConfigError as e:
            return MappingCheck(result.files, f"{e.setting}: {e.message}")
    return result


class MappingService:
    """The versions of one Redis, for the faces (``mwl-broker mapping``, the admin console)."""

    def __init__(
        self, versions: MappingVersions, mappings_dir: Path | None, dispatch: Dispatcher
    ) -> None:
        self._versions = versions
        self._mappings_dir = mappings_dir
        self._dispatch = dispatch

    def __repr__(self) -> str:
        return f"MappingService({self._versions!r}, mappings_dir={str(self._mappings_dir)!r})"

    def active(self) -> MappingVersion:
        """The active version; BrokerError before the first publish."""
        version = self._versions.active()
        if version is None:
            raise BrokerError(
                "no mapping version is published yet: start the broker once (it seeds version 1 "
                "from the mappings directory) or run 'mwl-broker mapping publish'"
            )
        return version

    def version(self, number: int) -> MappingVersion:
        """Version ``number``; BrokerError if there is none."""
        version = self._versions.get(number)
        if version is None:
            raise BrokerError(
                f"there is no mapping version {number} ('mapping history' lists them)"
            )
        return version

    def history(
        self, limit: int, before: int | None = None
    ) -> tuple[list[MappingVersion], int | None]:
        """The newest ``limit`` versions (below ``before``), newest first, and the active
        version's number."""
        return list(self._versions.history(limit, before)), self._versions.active_number()

    def diff(self, numbers: Sequence[int] = (), directory: Path | None = None) -> MappingDiff:
        """No number: the active version against the one it replaced; one: that version
        against the active one; two: the first against the second; ``directory``: the
        active version against its files (what publishing them changes)."""
        if directory is not None:
            new = self.active()
            label = str(directory)
            text = diff(new.files, read_mapping_dir(directory), f"v{new.number}", label)
            return MappingDiff(f"v{new.number}", label, text)
        if len(numbers) == 2:
            old, new = self.version(numbers[0]), self.version(numbers[1])
        elif len(numbers) == 1:
            old, new = self.version(numbers[0]), self.active()
        else:
            new = self.active()
            if new.based_on is None:
                return MappingDiff("", f"v{new.number}", "")
            old = self.version(new.based_on)
        text = diff(old.files, new.files, f"v{old.number}", f"v{new.number}")
        return MappingDiff(f"v{old.number}", f"v{new.number}", text)

    def publish(
        self,
        edited: Mapping[Path, str] | None = None,
        directory: Path | None = None,
        *,
        changes: MappingChanges | None = None,
        author: str,
        comment: str = "",
        expect: int | None = None,
        user: str = "",
    ) -> PublishResult:
        """``edited`` files replace (or add) theirs in the active set, or ``changes`` change,
        add and delete files of it (ChangeRefused when they cannot: :func:`apply_changes`);
        without either, the ``.yaml`` files of ``directory`` (default: mappings_dir, else
        the set shipped with mwl-broker) become the whole set. Nothing is published unless
        the set validates (ConfigError); ``expect``: refuse if the active version is no
        longer that one; ``user``: the console user, for the audit record."""
        if edited:
            changes = MappingChanges({path.name: text for path, text in edited.items()})
        if not changes:
            files = seed_mapping_files(directory or self._mappings_dir)[0]
        else:
            current = self._versions.active()
            base = dict(current.files) if current is not None else {}
            label = f"v{current.number}" if current is not None else "the set"
            files = apply_changes(base, changes, label)
        return self._versions.publish(
            files, author=author, comment=comment, expect=expect, user=user
        )

    def rollback(
        self,
        number: int,
        *,
        author: str,
        comment: str = "",
        expect: int | None = None,
        user: str = "",
    ) -> PublishResult:
        """Publish version ``number``'s files again, as a new version; ``expect``: refuse
        (ConflictError) if the active version is no longer that one."""
        self.version(number)  # BrokerError naming it when there is none
        return self._versions.rollback(
            number, author=author, comment=comment, expect=expect, user=user
        )

    def check(self, changes: MappingChanges) -> tuple[FileProblem, ...]:
        """:func:`check_changes` over the active version (before the first publish: the
        seed files); ChangeRefused as :func:`apply_changes`."""
        base, label = self._base()
        return check_changes(changes, base, label)

    def diff_edited(self, changes: MappingChanges) -> MappingDiff:
        """The active version against itself changed by ``changes`` (a new file's diff is
        from /dev/null, a deleted one's to it); ChangeRefused as :func:`apply_changes`."""
        files, label = self._base()
        text = diff(files, apply_changes(files, changes, label), label, "edited")
        return MappingDiff(label, "edited", text)

    def archive(self, number: int) -> tuple[MappingVersion, bytes]:
        """Version ``number`` as a zip of its YAML files (for putting back under version
        control)."""
        version = self.version(number)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in sorted(version.files.items()):
                stamp = zipfile.ZipInfo(check_file_name(name), _zip_time(version.created))
                stamp.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(stamp, text.encode("utf-8"))
        return version, buffer.getvalue()

    def _base(self) -> tuple[dict[str, str], str]:
        active = self._versions.active()
        if active is not None:
            return dict(active.files), f"v{active.number}"
        return seed_mapping_files(self._mappings_dir)

    def preview(
        self,
        data: bytes,
        source: str,
        edited: Mapping[Path, str] | None = None,
        peer: str = "",
        *,
        changes: MappingChanges | None = None,
        max_messages: int | None = None,
    ) -> MappingPreview:
        """Map the messages of ``data`` (a file's content, named ``source`` in errors) with
        the active version, ``edited`` files put in place of theirs or ``changes`` made to
        it (before the first publish: the seed files), as if they came from ``peer``;
        BrokerError past ``max_messages``. Nothing is stored."""
        if edited:
            changes = MappingChanges({str(path): text for path, text in edited.items()})
        changes = changes or MappingChanges()
        active = self._versions.active()
        files, label = self._base()
        if changes:
            renamed = MappingChanges(
                {Path(name).name: text for name, text in changes.edited.items()},
                changes.added,
                changes.deleted,
            )
            files = apply_changes(files, renamed, label)
            label += " with " + changes.describe()
        registry = MappingRegistry.from_texts(
            files, label=f"v{active.number}" if active is not None and not changes else None
        )
        try:
            messages = split_messages(data)
        except ValueError as e:
            raise BrokerError(f"{source}: not an HL7 message file: {e}") from e
        if not messages:
            raise BrokerError(f"{source}: no HL7 message (MSH segment) in the file")
        if max_messages is not None and len(messages) > max_messages:
            raise BrokerError(
                f"{source}: {len(messages)} messages; a preview takes at most {max_messages}"
            )
        results = tuple(preview(raw, registry, self._dispatch, peer) for raw in messages)
        return MappingPreview(label, results)

    def export(
        self, number: int | None = None, target: Path | None = None, *, prune: bool = False
    ) -> ExportReport:
        """Write the active (or a given) version to ``target`` (default: mappings_dir);
        with ``prune``, delete the directory's ``.yaml`` files that are not in it."""
        version = self.active() if number is None else self.version(number)
        target = target or self._mappings_dir
        if target is None:
            raise BrokerError("export: give --to DIR (no mappings_dir is set)")
        for name in version.files:
            check_file_name(name)  # before anything is written: names come from Redis
        target.mkdir(parents=True, exist_ok=True)
        done: list[tuple[Path, str]] = []
        for name, text in sorted(version.files.items()):
            path = target / name
            old = path.read_text(encoding="utf-8") if path.exists() else None
            if old != text:
                path.write_text(text, encoding="utf-8")
            done.append(
                (path, "unchanged" if old == text else "written" if old is None else "updated")
            )
        for path in sorted(target.glob("*.yaml")):
            if path.name not in version.files:
                if prune:
                    path.unlink()
                done.append((path, "deleted" if prune else "kept"))
        return ExportReport(version, target, tuple(done))


def _zip_time(created: float) -> tuple[int, int, int, int, int, int]:
    """A zip entry's date and time (UTC) for ``created``; zip cannot go before 1980."""
    stamp = time.gmtime(max(created, 315532800.0))
    return (stamp.tm_year, stamp.tm_mon, stamp.tm_mday, stamp.tm_hour, stamp.tm_min, stamp.tm_sec)
