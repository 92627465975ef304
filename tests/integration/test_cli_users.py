"""`mwl-broker user` and `mwl-broker token` as a person runs them: a separate process."""

from __future__ import annotations

import fcntl
import os
import re
import select
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import redis
from argon2 import PasswordHasher

from broker.services.auth import Role
from broker.store.connection import EmbeddedRedis
from broker.store.keys import KeySchema
from broker.store.users import UserStore

CLI = [sys.executable, "-m", "broker.cli"]
PASSWORD = "a long enough password"


def cli(*args: str, data: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args, "--data-dir", str(data)], input=stdin, capture_output=True, text=True,
        timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("MWL_BROKER_")},
    )  # fmt: skip


def test_user_add_list_passwd_disable_enable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = cli("user", "add", "alice", "--role", "admin", "--password-stdin", data=data,
                stdin=PASSWORD + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "user alice added, role admin" in added.stdout
    assert PASSWORD not in added.stdout + added.stderr
    again = cli("user", "add", "alice", "--role", "viewer", "--password-stdin", data=data,
                stdin=PASSWORD + "\n")  # fmt: skip
    assert again.returncode == 1 and "exists already" in again.stderr
    listed = cli("user", "list", data=data)
    assert re.search(r"^alice\s+admin\s+enabled\s+.*never$", listed.stdout, re.M), listed.stdout
    changed = cli("user", "passwd", "alice", "--password-stdin", data=data, stdin=PASSWORD + "!\n")
    assert changed.returncode == 0 and "sessions ended" in changed.stdout
    assert cli("user", "disable", "alice", data=data).returncode == 0
    assert "disabled" in cli("user", "list", data=data).stdout
    assert cli("user", "enable", "alice", data=data).returncode == 0
    assert re.search(r"^alice\s+admin\s+enabled", cli("user", "list", data=data).stdout, re.M)
    assert_password_is(data, "alice", PASSWORD + "!")


def assert_password_is(data: Path, name: str, password: str) -> None:
    """The stored hash verifies ``password`` (the embedded Redis the commands used)."""
    server = EmbeddedRedis(data / "redis")
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        try:
            record = UserStore(client, KeySchema("mwl")).user(name)
        finally:
            client.close()
    finally:
        server.stop()
    assert record is not None and record.role == Role.ADMIN.value
    assert PasswordHasher().verify(record.hash, password)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("user", "add", "bob", "--role", "viewer", "--password-stdin"), "short\n", "at least 12"),
        (("user", "add", "bob", "--role", "viewer", "--password-stdin"), "", "holds no password"),
        (("user", "add", "bob", "--role", "viewer"), "", "--password-stdin"),  # no terminal
        (("user", "add", "b c", "--role", "viewer", "--password-stdin"), PASSWORD, "user name"),
        (("user", "passwd", "nobody", "--password-stdin"), PASSWORD, "no user 'nobody'"),
        (("user", "disable", "nobody"), "", "no user 'nobody'"),
        (("token", "revoke", "0123456789abcdef"), "", "no token"),
        (("token", "create", "--role", "viewer", "--scanner", "A" * 17), "", "--scanner"),
    ],
)
def test_bad_input_is_named(
    tmp_path: Path, args: tuple[str, ...], stdin: str, message: str
) -> None:
    result = cli(*args, data=tmp_path / "data", stdin=stdin)
    assert result.returncode == 1, result
    assert message in result.stderr


def test_a_role_must_be_one_of_three(tmp_path: Path) -> None:
    result = cli("user", "add", "bob", "--role", "root", "--password-stdin", data=tmp_path)
    assert result.returncode == 2 and "--role" in result.stderr


def test_token_create_list_revoke(tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = cli("token", "create", "--role", "editor", "--label", "RIS sync", "--scanner",
                  "CT1", data=data)  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "warning: no [scanners.CT1] table" in created.stderr  # none in these settings
    assert "unknown caller" in created.stderr
    token = created.stdout.splitlines()[0]
    match = re.fullmatch(r"mwlb_([0-9a-f]{16})_[A-Za-z0-9_-]{43}", token)
    assert match is not None, created.stdout
    token_id = match.group(1)
    listed = cli("token", "list", data=data)
    assert re.search(rf"^{token_id}\s+editor\s+CT1\s+.*RIS sync$", listed.stdout, re.M)
    assert token.split("_", 2)[2] not in listed.stdout
    revoked = cli("token", "revoke", token_id, data=data)
    assert revoked.returncode == 0 and f"token {token_id} revoked" in revoked.stdout
    assert cli("token", "list", data=data).stdout.strip() == "no token"


def at_a_terminal(args: list[str], answers: list[tuple[bytes, bytes]]) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as its controlling terminal (so getpass reads
    from it, echo off), answering each prompt; its exit status and what the terminal showed."""
    master, slave = os.openpty()

    def controlling_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    env = {k: v for k, v in os.environ.items() if not k.startswith("MWL_BROKER_")}
    proc = subprocess.Popen(
        [*CLI, *args], stdin=slave, stdout=slave, stderr=slave,
        preexec_fn=controlling_terminal, env=env,
    )  # fmt: skip
    os.close(slave)
    shown = b""
    try:
        for prompt, answer in [*answers, (b"", b"")]:
            while prompt not in shown or not prompt:
                ready, _, _ = select.select([master], [], [], 60)
                assert ready, shown
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the command ended and closed the terminal
                    chunk = b""
                if not chunk:
                    break
                shown += chunk
            if answer:
                os.write(master, answer)
        return proc.wait(timeout=60), shown.decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_init_at_a_terminal_asks_for_the_first_admin(tmp_path: Path) -> None:
    site = tmp_path / "site"
    secret = PASSWORD.encode() + b"\n"
    status, shown = at_a_terminal(
        ["init", str(site)],
        [(b"user name; empty: later): ", b"root\n"), (b"Password: ", secret),
         (b"(again): ", secret)],
    )  # fmt: skip
    assert status == 0, shown
    assert "user root added, role admin" in shown and PASSWORD not in shown  # not echoed
    listed = subprocess.run(
        [*CLI, "user", "list", "--config", str(site / "broker.toml")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert re.search(r"^root\s+admin\s+enabled", listed.stdout, re.M), listed


def test_passwords_typed_twice_must_match(tmp_path: Path) -> None:
    status, shown = at_a_terminal(
        ["user", "add", "bob", "--role", "viewer", "--data-dir", str(tmp_path / "data")],
        [(b"Password: ", PASSWORD.encode() + b"\n"), (b"(again): ", b"something else\n")],
    )
    assert status == 1 and "the two passwords differ; nothing changed" in shown


def test_a_token_for_a_scanner_with_a_profile_gets_no_warning(tmp_path: Path) -> None:
    settings = tmp_path / "broker.toml"
    settings.write_text('[scanners.CT1]\naddresses = ["10.1.2.3"]\n', encoding="utf-8")
    created = cli("token", "create", "--role", "viewer", "--scanner", "CT1", "--config",
                  str(settings), data=tmp_path / "data")  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "warning" not in created.stderr
