"""`mwl-broker user` and `mwl-broker token` as a person runs them: a separate process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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
