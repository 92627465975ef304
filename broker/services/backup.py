"""``mwl-broker backup`` and ``restore``: the broker's data to a file and back.

A backup holds logical records (``broker.store.backup_read``), not Redis keys, in a
file of its own format (``broker.services.backup_file``). A restore checks the
whole file first, then writes the records through the store's key schema
(``broker.store.backup_write``): every index, pseudonym and entry id is computed
again, so the target may have another ``redis_key_secret`` and another prefix.

A restore goes into a Redis without data only (a broker that started once and
seeded its mapping set counts as empty); ``replace`` removes what is there first.
If writing fails halfway, what was written is removed again, so the Redis is left
empty, never half restored. Both are on the audit trail, with counts only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from broker.audit.events import AuditEvent, AuditType, Outcome
from broker.audit.writer import NO_AUDIT, AuditSink
from broker.common.clock import SYSTEM_CLOCK, Clock
from broker.errors import BrokerError
from broker.services import backup_file
from broker.services.backup_file import BackupFileError, BackupHeader, BackupWriterFile
from broker.store.backup_read import BackupReader
from broker.store.backup_write import BackupWriter
from broker.store.worklist import WorklistStore

__all__ = ["BackupResult", "BackupService", "RestoreResult"]


@dataclass(frozen=True)
class BackupResult:
    counts: dict[str, int]
    skipped: dict[str, int]


@dataclass(frozen=True)
class RestoreResult:
    header: BackupHeader
    removed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    same_secret: bool = True


class BackupService:
    """Backup and restore on one Redis; ``store`` builds the worklist store (key secret
    checked, keys migrated), as a starting broker does."""

    def __init__(
        self,
        client: redis.Redis,
        store: Callable[[], WorklistStore],
        audit: AuditSink = NO_AUDIT,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._client = client
        self._store = store
        self._audit = audit
        self._clock = clock

    def __repr__(self) -> str:
        return "BackupService()"

    def _record(self, kind: AuditType, path: Path, details: dict[str, Any],
                error: BaseException | None = None, refused: bool = False) -> None:  # fmt: skip
        outcome = Outcome.SUCCESS if error is None else Outcome.FAILED
        if refused:
            outcome = Outcome.REFUSED
        reason = "" if error is None else f"{type(error).__name__}"
        self._audit.record(
            AuditEvent(kind, outcome, target=str(path), reason=reason, details=details)
        )

    def backup(self, path: Path) -> BackupResult:
        """Write every record to ``path`` (atomically, mode 0600)."""
        keys = self._store().keys
        reader = BackupReader(self._client, keys)
        target = BackupWriterFile(
            path, prefix=keys.prefix, fingerprint=keys.fingerprint(), created=self._clock.now()
        )
        try:
            with target as out:
                for record in reader.records():
                    out.write(record)
        except BrokerError as e:
            self._record(AuditType.BACKUP, path, {"counts": dict(target.counts)}, e)
            raise
        result = BackupResult(dict(target.counts), dict(reader.skipped))
        details = {"format": backup_file.FORMAT_VERSION, "counts": result.counts,
                   "skipped": result.skipped}  # fmt: skip
        self._record(AuditType.BACKUP, path, details)
        return result

    def restore(
        self,
        path: Path,
        *,
        replace: bool = False,
        removing: Callable[[Counter[str]], None] | None = None,
    ) -> RestoreResult:
        """Check ``path`` whole, then write its records (see the module docstring);
        ``removing`` is told what ``replace`` removes, before it goes."""
        try:
            header = backup_file.check(path)
        except BrokerError as e:
            self._record(AuditType.RESTORE, path, {}, e, refused=True)
            raise
        keys = self._store().keys
        same = header.fingerprint == keys.fingerprint()
        writer = BackupWriter(self._client, keys, same_secret=same)
        present = writer.present()
        details: dict[str, Any] = {"format": header.version, "counts": header.counts}
        if present and not replace:
            self._record(AuditType.RESTORE, path, {**details, "present": dict(present)},
                         refused=True)  # fmt: skip
            held = ", ".join(f"{kind}: {n}" for kind, n in sorted(present.items()))
            raise BrokerError(
                f"this Redis holds data already ({held}): a restore does not mix a backup "
                "with other data; --replace removes it first"
            )
        if present and removing is not None:
            removing(present)
        writer.clear()
        try:
            writer.write(backup_file.records(path))
        except BaseException as e:
            writer.clear()  # nothing half restored: the Redis was empty before
            self._record(AuditType.RESTORE, path, details, e)
            if isinstance(e, (ValueError, KeyError, TypeError)):  # a record it cannot write
                raise BackupFileError(
                    f"{path}: line {writer.written + 1}: a record this broker cannot write "
                    f"({type(e).__name__}); nothing was restored"
                ) from e
            raise
        skipped = dict(writer.skipped)
        self._record(AuditType.RESTORE, path,
                     {**details, "removed": dict(present), "skipped": skipped})  # fmt: skip
        return RestoreResult(header, dict(present), skipped, same)
