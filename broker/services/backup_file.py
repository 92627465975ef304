"""The backup file: gzip-compressed JSON lines, with its own format version and a manifest.

    line 1      header   {"format": "mwl-broker-backup", "version": 1, "broker": "1.2.3",
                          "created": epoch, "prefix": "mwl", "fingerprint": "…"}
    lines 2…    records  one per line (``broker.store.backup_read``)
    last line   manifest {"manifest": {"records": n, "counts": {kind: n}, "broker": "1.2.3",
                          "sha256": "…"}}: the checksum is over every line before it
                          (uncompressed bytes)

``fingerprint`` is the one the Redis keeps of its ``redis_key_secret`` (an HMAC of a
fixed text, never the secret): a restore compares it with its own to know whether
the pseudonyms the file holds (``field`` records) are valid there.

The file holds patient data and password hashes: it is created with mode 0600 under a
temporary name in the target's directory and renamed into place only when complete
(fsynced), so a file with the target's name is always whole. :func:`check` reads a
whole file before anything is restored: the header, every record's shape, the counts
and the checksum; :func:`records` then streams it again. Both keep one line in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import secrets
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from broker.common import jsontext
from broker.errors import BrokerError

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "BackupFileError",
    "BackupHeader",
    "BackupWriterFile",
    "broker_version",
    "check",
    "records",
]

FORMAT = "mwl-broker-backup"
FORMAT_VERSION = 2  # 2: outbound and outbound-state records, entries' origin
# An entry's ``mapping_version`` (since version 2, optional): a reader without it ignores the
# field (the entry restores with its version unknown), which is no misreading: no new version.
# Each kind's required fields (``broker.store.backup_read`` says what they hold).
_FIELDS: dict[str, tuple[str, ...]] = {
    "order": ("order_key", "status", "time", "entries"),
    "field": ("hash", "field", "value"),
    "patient": ("patient_id", "ds", "time"),
    "alias": ("old", "target", "ttl_ms", "merged_ttl_ms"),
    "mpps": ("uid", "ds", "status", "aet", "created", "updated", "time", "entries"),
    "mapping": ("number", "fields"),
    "mapping-state": ("seq", "active"),
    "user": ("name", "value"),
    "token": ("name", "value"),
    "dedup": ("name", "value", "ttl_ms"),
    "outbound": ("destination", "id", "state", "order_key", "step", "fields"),
    "outbound-state": ("seq",),
}
_ENTRY_FIELDS = ("step", "ds", "status", "ended")


class BackupFileError(BrokerError):
    """A backup file that cannot be used: its path and what is wrong with it."""


def broker_version() -> str:
    try:
        return version("mwl-broker")
    except PackageNotFoundError:  # pragma: no cover - a checkout not installed
        return "unknown"


@dataclass(frozen=True)
class BackupHeader:
    """What a checked file says about itself."""

    version: int
    broker: str
    created: float
    prefix: str
    fingerprint: str
    counts: dict[str, int]


class BackupWriterFile:
    """Writes a backup file atomically (see the module docstring); a context manager that
    keeps the target untouched unless the ``with`` block ended without an error."""

    def __init__(self, path: Path, *, prefix: str, fingerprint: str, created: float) -> None:
        self._path = path
        self._tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        self._header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "broker": broker_version(),
            "created": created,
            "prefix": prefix,
            "fingerprint": fingerprint,
        }
        self._sha = hashlib.sha256()
        self.counts: Counter[str] = Counter()
        self._raw: IO[bytes] | None = None
        self._gz: gzip.GzipFile | None = None

    def __repr__(self) -> str:
        return f"BackupWriterFile({str(self._path)!r})"

    def __enter__(self) -> BackupWriterFile:
        try:
            fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            raise BackupFileError(f"{self._path}: cannot write there: {e.strerror}") from e
        self._raw = os.fdopen(fd, "wb")
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0)
        self._line(self._header)
        return self

    def _line(self, data: dict[str, Any]) -> None:
        assert self._gz is not None
        line = jsontext.dumps(data).encode() + b"\n"
        self._sha.update(line)
        self._gz.write(line)

    def write(self, record: dict[str, Any]) -> None:
        self.counts[record["kind"]] += 1
        self._line(record)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._gz is not None and self._raw is not None
        try:
            if error is None:
                manifest = {
                    "records": sum(self.counts.values()),
                    "counts": dict(self.counts),
                    "broker": self._header["broker"],
                    "sha256": self._sha.hexdigest(),
                }
                self._gz.write(jsontext.dumps({"manifest": manifest}).encode() + b"\n")
            self._gz.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
            if error is None:
                os.replace(self._tmp, self._path)
                _fsync_dir(self._path.parent)
        except OSError as e:
            raise BackupFileError(f"{self._path}: cannot write there: {e.strerror}") from e
        finally:
            self._tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Numbered lines of the uncompressed file; a damaged file raises BackupFileError."""
    try:
        with gzip.open(path, "rb") as f:
            yield from enumerate(f, start=1)
    except FileNotFoundError as e:
        raise BackupFileError(f"{path}: no such file") from e
    except IsADirectoryError as e:
        raise BackupFileError(f"{path}: a directory, not a backup file") from e
    except PermissionError as e:
        raise BackupFileError(f"{path}: cannot read it (permission denied)") from e
    except EOFError as e:
        raise BackupFileError(f"{path}: the file is truncated (it ends inside its data)") from e
    except (gzip.BadGzipFile, zlib.error) as e:
        raise BackupFileError(f"{path}: not a backup file, or corrupted ({e})") from e
    except OSError as e:
        raise BackupFileError(f"{path}: cannot read it: {e.strerror or e}") from e


def _parse(path: Path, number: int, line: bytes) -> dict[str, Any]:
    try:
        data = jsontext.loads(line)
    except ValueError:
        raise BackupFileError(f"{path}: line {number} is not JSON (the file is damaged)") from None
    if not isinstance(data, dict):
        raise BackupFileError(f"{path}: line {number} is not a record (the file is damaged)")
    return data


def _check_header(path: Path, data: dict[str, Any]) -> None:
    if data.get("format") != FORMAT:
        raise BackupFileError(f"{path}: not an mwl-broker backup file")
    found = data.get("version")
    if not isinstance(found, int):
        raise BackupFileError(f"{path}: the header has no format version (the file is damaged)")
    if found > FORMAT_VERSION:
        raise BackupFileError(
            f"{path}: backup format version {found}, written by mwl-broker "
            f"{data.get('broker', '?')}; this broker reads format {FORMAT_VERSION} and "
            "older: restore it with that release or a newer one"
        )


def _check_record(path: Path, number: int, data: dict[str, Any]) -> str:
    kind = data.get("kind")
    wanted = _FIELDS.get(kind) if isinstance(kind, str) else None
    if wanted is None:
        raise BackupFileError(f"{path}: line {number}: unknown record kind {kind!r}")
    missing = [f for f in wanted if f not in data]
    if kind == "order" and isinstance(data.get("entries"), list):
        for entry in data["entries"]:
            if not isinstance(entry, dict):
                missing.append("entries")
                break
            missing += [f"entries.{f}" for f in _ENTRY_FIELDS if f not in entry]
    if missing:
        article = "an" if str(kind)[0] in "aeiou" else "a"
        raise BackupFileError(
            f"{path}: line {number}: {article} {kind} record without "
            + ", ".join(sorted(set(missing)))
        )
    return str(kind)


def check(path: Path) -> BackupHeader:
    """Read the whole file and check it (see the module docstring); its header and counts.

    What a damaged compressed stream garbles (a header that is not one, a line that is not
    JSON) is refused as the damage it is: the rest of the stream is read, and a
    decompression error found there is the answer instead."""
    lines = _lines(path)
    try:
        return _checked(path, lines)
    except BackupFileError:
        for _ in lines:  # raises BackupFileError when the stream itself is damaged
            pass
        raise


def _checked(path: Path, lines: Iterator[tuple[int, bytes]]) -> BackupHeader:
    sha = hashlib.sha256()
    counts: Counter[str] = Counter()
    header: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    for number, line in lines:
        if manifest is not None:
            raise BackupFileError(f"{path}: line {number} follows the manifest (damaged)")
        data = _parse(path, number, line)
        if header is None:
            _check_header(path, data)
            header = data
        elif "manifest" in data:
            manifest = data["manifest"] if isinstance(data["manifest"], dict) else {}
            continue
        else:
            counts[_check_record(path, number, data)] += 1
        sha.update(line)
    if header is None:
        raise BackupFileError(f"{path}: the file is empty")
    if manifest is None:
        raise BackupFileError(f"{path}: the file is truncated (no manifest at its end)")
    if manifest.get("sha256") != sha.hexdigest():
        raise BackupFileError(f"{path}: the checksum does not match (the file was changed)")
    if manifest.get("counts") != dict(counts):
        raise BackupFileError(f"{path}: the record counts do not match the manifest")
    return BackupHeader(int(header["version"]), str(header.get("broker", "")),
                        float(header.get("created", 0)), str(header.get("prefix", "")),
                        str(header.get("fingerprint", "")), dict(counts))  # fmt: skip


def records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a file :func:`check` passed, streamed; the checksum is compared
    again at the end (BackupFileError if the file changed since it was checked)."""
    sha = hashlib.sha256()
    for number, line in _lines(path):
        data = _parse(path, number, line)
        if "manifest" in data:
            if data["manifest"].get("sha256") != sha.hexdigest():
                raise BackupFileError(f"{path}: the file changed while it was restored")
            return
        sha.update(line)
        if number > 1:
            yield data
    raise BackupFileError(f"{path}: the file changed while it was restored")
