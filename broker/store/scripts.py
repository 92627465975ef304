"""Lua scripts: files in ``broker/store/lua/`` loaded by name, and the one way to run them.

Files. ``lua/<name>.lua`` is a script; ``lua/lib/<name>.lua`` is Lua that scripts
share (local functions, nothing that runs by itself). A file's header, the comment
lines it starts with, says what it is for, which keys it touches and what it
returns, and holds the loader's two directives::

    -- include: guards      the text of lua/lib/guards.lua goes before this file's
    -- read-only            the script writes nothing

A library includes others the same way. :func:`load` puts each included text once,
what it depends on first, before the script's own: so whoever reads a .lua file
sees at its top everything it uses. (Self-contained scripts would have copied the
message log's record code, which also ends the order apply script so that an order
and its record are written by one atomic call.)

Keys. The caller passes every key it can name in ``KEYS``; a payload in ``ARGV``
names them by position (:class:`KeyList`). Keys a script can only find in stored
data (an entry id read from an order's set) it makes from a prefix passed in
``KEYS``, or reads whole from stored fields (an entry's index keys): each header
says which.

Running. The embedded Redis is 6.2, without Functions: scripts run with EVALSHA
and are loaded (SCRIPT LOAD) when Redis answers NOSCRIPT, on first use or after a
restart (``broker.store.steps``). :class:`ScriptRunner` is the one way to call a
script, at once (:meth:`~ScriptRunner.run`) or as steps of an operation
(:meth:`~ScriptRunner.steps`, for the step pipeline); after a script that writes it
sends WAITAOF (Redis 7.2+) or WAIT when replicas must confirm the write
(``redis_wait_replicas``).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis

from broker.errors import StoreError
from broker.store import steps
from broker.store.steps import Command, Steps

__all__ = ["KeyList", "Script", "ScriptRunner", "load"]

_NAME = re.compile(r"[a-z][a-z0-9_]*")
_INCLUDE = re.compile(r"--\s*include:\s*(\S+)\s*")
_READ_ONLY = re.compile(r"--\s*read-only\s*")


@dataclass(frozen=True)
class Script:
    """A Lua script as Redis runs it: its includes resolved; ``sha`` names it for EVALSHA."""

    name: str
    source: str = field(repr=False)
    writes: bool = True
    sha: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)

    def command(self, keys: Sequence[str], args: Sequence[Any] = ()) -> Command:
        """The EVALSHA of this script (loaded again by the steps on NOSCRIPT)."""
        return Command(("EVALSHA", self.sha, len(keys), *keys, *args), self)


@functools.cache
def load(name: str) -> Script:
    """The script ``lua/<name>.lua``, its includes resolved; read once per process."""
    text = _read(name)
    includes, read_only = _header(text)
    parts: list[str] = []
    _resolve(includes, (name,), set(), parts)
    return Script(name, "".join(parts) + text, writes=not read_only)


def _read(name: str, folder: str = "") -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a Lua script name: {name!r}")
    where = resources.files("broker.store") / "lua"
    if folder:
        where = where / folder
    return (where / f"{name}.lua").read_text(encoding="utf-8")


def _header(text: str) -> tuple[list[str], bool]:
    """A file's directives: the libraries it includes, whether it says it is read-only."""
    includes: list[str] = []
    read_only = False
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("--"):
            if line:
                break
            continue
        if found := _INCLUDE.fullmatch(line):
            includes.append(found.group(1))
        elif _READ_ONLY.fullmatch(line):
            read_only = True
    return includes, read_only


def _resolve(names: Iterable[str], chain: tuple[str, ...], seen: set[str], out: list[str]) -> None:
    """Append each library of ``names`` once, after what it includes itself."""
    for name in names:
        if name in chain:
            raise ValueError(f"Lua include loop: {' -> '.join((*chain, name))}")
        if name in seen:
            continue
        text = _read(name, "lib")
        _resolve(_header(text)[0], (*chain, name), seen, out)
        seen.add(name)
        out.append(text if text.endswith("\n") else text + "\n")


class KeyList:
    """The KEYS of one script call: ``add`` gives a key's position (1-based, as in Lua).

    ``fixed`` keys take the first positions, in order, as the script's header says;
    a key added again gets the position it has.
    """

    def __init__(self, *fixed: str) -> None:
        self.names: list[str] = list(fixed)
        self._at: dict[str, int] = {}
        for at, key in enumerate(fixed, start=1):
            self._at.setdefault(key, at)

    def __repr__(self) -> str:
        return f"KeyList({len(self.names)} keys)"

    def __len__(self) -> int:
        return len(self.names)

    def add(self, key: str) -> int:
        at = self._at.get(key)
        if at is None:
            self.names.append(key)
            at = self._at[key] = len(self.names)
        return at

    def extend(self, keys: Iterable[str]) -> int:
        """Append ``keys`` as a block (each one, even if listed before); its first position."""
        first = len(self.names) + 1
        self.names.extend(keys)
        return first


class ScriptRunner:
    """Runs scripts on one Redis; after each script that writes, waits for ``wait_replicas``
    replicas (when not 0), so that an answer given after it means the replicas have it.

    With WAITAOF where the server has it (Redis 7.2+: the replicas wrote it to their
    append-only files), else WAIT (the replicas received it); the first write finds out
    (an unknown command is answered at once) and the runner remembers."""

    def __init__(
        self, client: redis.Redis, *, wait_replicas: int = 0, wait_timeout_ms: int = 1000
    ) -> None:
        self._client = client
        self._wait_replicas = wait_replicas
        self._wait_timeout_ms = wait_timeout_ms
        self._wait_aof: bool | None = None  # None: not known yet

    def __repr__(self) -> str:
        return f"ScriptRunner(wait_replicas={self._wait_replicas})"

    @property
    def client(self) -> redis.Redis:
        return self._client

    @property
    def waits(self) -> bool:
        """Whether writes wait for replicas (``redis_wait_replicas`` is not 0)."""
        return self._wait_replicas > 0

    def run(self, script: Script, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        """Run ``script`` now; a Redis failure is raised as StoreError."""
        return steps.run(self._client, self.steps(script, keys, args))

    def steps(self, script: Script, keys: Sequence[str], args: Sequence[Any] = ()) -> Steps[Any]:
        """:meth:`run` as steps (``broker.store.steps``): the script, then WAITAOF or WAIT
        if it writes and replicas must confirm; its reply."""
        (reply,) = yield [script.command(keys, args)]
        if script.writes and self._wait_replicas:
            yield from self._confirm()
        return reply

    def _confirm(self) -> Steps[None]:
        wanted, timeout = self._wait_replicas, self._wait_timeout_ms
        how = "WAIT"
        if self._wait_aof is not False:
            try:
                (acked,) = yield [Command(("WAITAOF", 0, wanted, timeout))]
            except StoreError as e:
                if self._wait_aof or "unknown command" not in str(e).lower():
                    raise
                self._wait_aof = False  # Redis before 7.2
            else:
                self._wait_aof, how, count = True, "WAITAOF", int(acked[1])
        if not self._wait_aof:
            (acked,) = yield [Command(("WAIT", wanted, timeout))]
            count = int(acked)
        if count < wanted:
            raise StoreError(f"only {count} of {wanted} replicas confirmed the write ({how})")
