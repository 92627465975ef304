"""``mwl-broker init DIR``: a settings file and the default mappings for a site to edit."""

from __future__ import annotations

import dataclasses
import re
import stat
from pathlib import Path

import pytest

from broker.cli import main
from broker.settings import Settings, load_settings
from broker.store.mapping_versions import packaged_mapping_files, read_mapping_dir

# Commented settings of the [broker] table: "# name = value   # comment"
_SETTING_LINE = re.compile(r"^# (?P<name>[a-z0-9_]+) = (?P<value>.+?)(?:\s+#.*)?$")
# Lines that show an example rather than the default
_EXAMPLES = {"redis_url", "redis_password", "hl7_tls_cert", "hl7_tls_key", "hl7_tls_client_ca",
             "redis_sentinel_password", "dicom_tls_cert", "dicom_tls_key", "dicom_tls_client_ca",
             "redis_tls_ca",
             "redis_tls_cert", "redis_tls_key", "audit_syslog_tls_ca", "audit_syslog_tls_cert",
             "audit_syslog_tls_key", "admin_tls_cert", "admin_tls_key"}  # fmt: skip


def test_init_writes_settings_and_mappings_then_names_the_next_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    assert main(["init", str(site)]) == 0
    out = capsys.readouterr().out
    assert f"Next: mwl-broker serve --config {site / 'broker.toml'}" in out
    assert "no user yet (and no default password)" in out  # not a terminal: how to add one
    assert f"mwl-broker user add NAME --role admin --config {site / 'broker.toml'}" in out
    settings = load_settings(config_file=site / "broker.toml", environ={})
    assert settings.data_dir == site / "data"
    assert settings.mappings_dir == site / "mappings"
    secret = site / "redis-key.secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert settings.redis_key_secret == secret.read_text(encoding="utf-8").strip()
    assert len(settings.redis_key_secret) >= 32
    assert settings.redis_key_secret not in out and settings.redis_key_secret not in repr(settings)
    assert read_mapping_dir(site / "mappings") == packaged_mapping_files()
    assert (site / "mappings" / "README.md").read_text(encoding="utf-8").startswith("#")


def test_each_init_writes_a_secret_of_its_own(tmp_path: Path) -> None:
    assert main(["init", str(tmp_path / "a")]) == 0
    assert main(["init", str(tmp_path / "b")]) == 0
    a, b = ((tmp_path / d / "redis-key.secret").read_text() for d in "ab")
    assert a != b


def test_init_never_overwrites_a_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "redis-key.secret").write_text("the site's own secret\n", encoding="utf-8")
    assert main(["init", str(tmp_path)]) == 1
    assert "redis-key.secret" in capsys.readouterr().err
    assert not (tmp_path / "broker.toml").exists()
    assert (tmp_path / "redis-key.secret").read_text() == "the site's own secret\n"


def test_init_never_overwrites_a_sites_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "broker.toml").write_text("# edited by the site\n", encoding="utf-8")
    assert main(["init", str(site)]) == 1
    assert "broker.toml" in capsys.readouterr().err
    assert (site / "broker.toml").read_text(encoding="utf-8") == "# edited by the site\n"
    assert not (site / "mappings").exists()


def test_every_setting_is_in_the_written_file_with_its_default(tmp_path: Path) -> None:
    """Uncommenting a line of the [broker] table changes nothing: each shows the default."""
    assert main(["init", str(tmp_path)]) == 0
    text = (tmp_path / "broker.toml").read_text(encoding="utf-8")
    broker_table = text.split("\n[broker]\n", 1)[1].split("\n# [", 1)[0]
    shown = {}
    for line in broker_table.splitlines():
        m = _SETTING_LINE.match(line)
        if m and m["name"] not in _EXAMPLES:
            shown[m["name"]] = m["value"]
    assert "redis_url" in broker_table and "REDIS_PASSWORD_FILE" in broker_table
    config = tmp_path / "uncommented.toml"
    config.write_text(
        "[broker]\n" + "".join(f"{k} = {v}\n" for k, v in shown.items()), encoding="utf-8"
    )
    loaded = load_settings(config_file=config, environ={})
    defaults = Settings()
    for name in shown:
        assert getattr(loaded, name) == getattr(defaults, name), name
    assert "\nredis_key_secret_file = " in broker_table  # the secret is a file init wrote
    documented = set(shown) | _EXAMPLES | {"data_dir", "mappings_dir", "redis_key_secret"}
    tables = {"hl7_sender_charsets", "hl7_sender_timezones", "dicom_scanners", "hl7_senders",
              "hl7_destinations"}  # fmt: skip
    for field in dataclasses.fields(Settings):
        if field.name in tables:
            continue
        assert field.name in documented, f"{field.name} is missing from the init template"
    assert "[broker.hl7_sender_charsets]" in text and "[broker.hl7_sender_timezones]" in text
    assert "[scanners.CT1]" in text and "[hl7_senders.RIS]" in text
    assert "[hl7_destinations.RIS]" in text
