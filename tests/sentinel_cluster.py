"""A real Redis Sentinel setup for tests: a primary, its replicas and three sentinels.

Every process is Debian's ``redis-server`` (a sentinel is ``redis-server --sentinel``) on
127.0.0.1, each on a free port the OS picked, with its files in a temporary directory;
passwords are set on the servers and on the sentinels. The sentinels' timeouts are low
(a primary is down after 500 ms without an answer) so a failover takes seconds.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.waiting import wait_for

SERVICE = "mwl"
_DOWN_AFTER_MS = 500
_FAILOVER_TIMEOUT_MS = 4000


def free_ports(count: int) -> list[int]:
    """``count`` different TCP ports on 127.0.0.1 the OS has just given out (and taken back).

    All are held until the last is given, so the OS cannot give one twice."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


@dataclass(frozen=True)
class ClusterTLS:
    """Every server and sentinel on TLS only, with this certificate (for 127.0.0.1)."""

    ca: Path
    cert: Path
    key: Path

    def conf(self) -> list[str]:
        return [
            f"tls-cert-file {self.cert}", f"tls-key-file {self.key}",
            f"tls-ca-cert-file {self.ca}", "tls-auth-clients no", "tls-replication yes",
        ]  # fmt: skip


class SentinelCluster:
    """Start with ``with``; ``primary_port()`` is where the sentinels say the primary is."""

    def __init__(
        self, folder: Path, server: str, *, replicas: int = 2, tls: ClusterTLS | None = None
    ) -> None:
        self.folder = folder
        self._server = server
        self._tls = tls
        self.password = secrets.token_urlsafe(16)
        self.sentinel_password = secrets.token_urlsafe(16)
        ports = free_ports(1 + replicas + 3)
        self.ports = ports[: 1 + replicas]  # the first: the primary
        self.sentinel_ports = ports[1 + replicas :]
        self._ids = {port: secrets.token_hex(20) for port in self.sentinel_ports}
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def sentinels(self) -> tuple[str, ...]:
        return tuple(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def __enter__(self) -> SentinelCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            primary = self.ports[0]
            for port in self.ports:
                self._start(port, self._server_conf(port, None if port == primary else primary))
            for port in self.sentinel_ports:
                self._start(port, self._sentinel_conf(port, primary), "--sentinel")
            wait_for(self._settled, "the sentinels see the primary, its replicas and each other")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:  # a replica writing its first AOF refuses to stop ("can't exit")
                process.wait(2)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def client(self, port: int) -> redis.Redis:
        return redis.Redis("127.0.0.1", port, password=self.password, **self._options())

    def sentinel_client(self, port: int) -> redis.Redis:
        return redis.Redis("127.0.0.1", port, password=self.sentinel_password, **self._options())

    def _options(self) -> dict[str, Any]:
        if self._tls is None:
            return {"socket_timeout": 5}
        return {"socket_timeout": 5, "ssl": True, "ssl_ca_certs": str(self._tls.ca)}

    def _listen(self, port: int) -> list[str]:
        if self._tls is None:
            return [f"port {port}"]
        return ["port 0", f"tls-port {port}", *self._tls.conf()]

    def primary_port(self) -> int:
        """The primary's port, once every sentinel names the same live server (after a
        failover, a sentinel that did not lead it learns of it a moment later)."""
        said: set[int] = set()

        def agreed() -> bool:
            said.clear()
            for port in self.sentinel_ports:
                with self.sentinel_client(port) as sentinel:
                    _host, primary = sentinel.sentinel_get_master_addr_by_name(SERVICE)
                said.add(int(primary))
            return len(said) == 1 and self.processes[next(iter(said))].poll() is None

        wait_for(agreed, "every sentinel naming the same live primary")
        return said.pop()

    def fail_over(self) -> None:
        """``SENTINEL FAILOVER``, asked again while the sentinel finds no replica good enough
        yet (NOGOODSLAVE: its view of a replica is a moment old on a loaded machine)."""

        def asked() -> bool:
            with self.sentinel_client(self.sentinel_ports[0]) as sentinel:
                try:
                    sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
                except redis.ResponseError as e:
                    if "NOGOODSLAVE" in str(e):
                        return False
                    raise
            return True

        wait_for(asked, "a sentinel accepting the failover")

    def failovers(self) -> int:
        """How many times the sentinels switched to another primary (their logs' count)."""
        counts = [
            log.read_text(errors="replace").count("+switch-master")
            for log in self.folder.glob("sentinel-*/sentinel.log")
        ]
        return max(counts, default=0)

    def kill(self, port: int) -> None:
        """SIGKILL the server on ``port`` (as the OOM killer or a power cut does)."""
        process = self.processes[port]
        process.kill()
        process.wait()

    def _start(self, port: int, conf: str, *flags: str) -> None:
        path = self.folder / f"{port}.conf"
        path.write_text(conf)
        path.chmod(0o600)
        self.processes[port] = subprocess.Popen(
            [self._server, str(path), *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def _server_conf(self, port: int, primary: int | None) -> str:
        folder = self.folder / str(port)
        folder.mkdir()
        lines = [
            *self._listen(port), "bind 127.0.0.1", f"dir {folder}", f"logfile {folder}/redis.log",
            "appendonly yes", "appendfsync always", 'save ""', "maxmemory-policy noeviction",
            f"requirepass {self.password}", f"masterauth {self.password}",
            "repl-diskless-sync-delay 0",  # a replica's first sync at once, not after 5 s
            "shutdown-timeout 0",  # stopped, a primary does not wait for its replicas
        ]  # fmt: skip
        if primary is not None:
            lines.append(f"replicaof 127.0.0.1 {primary}")
        return "\n".join(lines) + "\n"

    def _sentinel_conf(self, port: int, primary: int) -> str:
        folder = self.folder / f"sentinel-{port}"
        folder.mkdir()
        return "\n".join([
            *self._listen(port), "bind 127.0.0.1", f"dir {folder}",
            f"logfile {folder}/sentinel.log",
            f"requirepass {self.sentinel_password}",
            f"sentinel sentinel-pass {self.sentinel_password}",
            f"sentinel monitor {SERVICE} 127.0.0.1 {primary} 2",
            f"sentinel auth-pass {SERVICE} {self.password}",
            f"sentinel down-after-milliseconds {SERVICE} {_DOWN_AFTER_MS}",
            f"sentinel failover-timeout {SERVICE} {_FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {SERVICE} {len(self.ports)}",
            f"sentinel myid {self._ids[port]}",
            # told what they would find out in seconds (INFO every 10 s, hellos every 2 s)
            *(f"sentinel known-replica {SERVICE} 127.0.0.1 {p}" for p in self.ports[1:]),
            *(f"sentinel known-sentinel {SERVICE} 127.0.0.1 {p} {self._ids[p]}"
              for p in self.sentinel_ports if p != port),
        ]) + "\n"  # fmt: skip

    def _settled(self) -> bool:
        """Every sentinel knows the primary, the replicas and the other sentinels; every
        replica is in sync with the primary."""
        replicas = len(self.ports) - 1
        for port in self.sentinel_ports:
            with contextlib.suppress(redis.RedisError), self.sentinel_client(port) as sentinel:
                state = sentinel.sentinel_master(SERVICE)
                if int(state["num-slaves"]) < replicas or int(state["num-other-sentinels"]) < 2:
                    return False
                continue
            return False
        with self.client(self.ports[0]) as primary:
            info = primary.info("replication")
        online = [info.get(f"slave{i}", {}).get("state") == "online" for i in range(replicas)]
        return all(online) and all(self._aof_written(port) for port in self.ports[1:])

    def _aof_written(self, port: int) -> bool:
        """The replica wrote its append-only file after its first sync."""
        with self.client(port) as replica:
            info = replica.info("persistence")
        return not (int(info["aof_rewrite_in_progress"]) or int(info["aof_rewrite_scheduled"]))
