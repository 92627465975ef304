from pathlib import Path

import pytest

from broker.errors import ConfigError
from broker.settings import Settings, load_settings


def test_defaults_match_the_documented_ports() -> None:
    s = load_settings(environ={})
    assert (s.hl7_port, s.dicom_port, s.ae_title, s.redis_url) == (2575, 11112, "MWL_BROKER", None)


def test_precedence_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text('[broker]\nhl7_port = 3000\ndicom_port = 3001\nae_title = "FROM_FILE"\n')
    s = load_settings(
        config_file=config,
        environ={"MWL_BROKER_DICOM_PORT": "4001", "MWL_BROKER_AE_TITLE": "FROM_ENV", "OTHER": "x"},
        overrides={"ae_title": "FROM_FLAG", "hl7_port": None},
    )
    assert (s.hl7_port, s.dicom_port, s.ae_title) == (3000, 4001, "FROM_FLAG")


@pytest.mark.parametrize(
    ("environ", "setting"),
    [
        ({"MWL_BROKER_HL7_PORT": "abc"}, "MWL_BROKER_HL7_PORT"),
        ({"MWL_BROKER_HL7_PORT": "70000"}, "hl7_port"),
        ({"MWL_BROKER_AE_TITLE": "A_TITLE_LONGER_THAN_16"}, "ae_title"),
        ({"MWL_BROKER_AE_TITLE": "BACK\\SLASH"}, "ae_title"),
        ({"MWL_BROKER_REDIS_URL": "http://x"}, "redis_url"),
        ({"MWL_BROKER_NO_SUCH_THING": "1"}, "MWL_BROKER_NO_SUCH_THING"),
        ({"MWL_BROKER_REDIS_ALLOW_UNSAFE": "maybe"}, "MWL_BROKER_REDIS_ALLOW_UNSAFE"),
        ({"MWL_BROKER_HL7_MAX_FRAME_BYTES": "0"}, "hl7_max_frame_bytes"),
        ({"MWL_BROKER_DICOM_ENTRY_CACHE": "-1"}, "dicom_entry_cache"),
        ({"MWL_BROKER_DICOM_ENTRY_CACHE": "lots"}, "MWL_BROKER_DICOM_ENTRY_CACHE"),
        ({"MWL_BROKER_DICOM_MAX_CANDIDATES": "0"}, "dicom_max_candidates"),
        ({"MWL_BROKER_DICOM_QUERY_CPU_SECONDS": "0"}, "dicom_query_cpu_seconds"),
        ({"MWL_BROKER_DICOM_QUERY_CPU_SECONDS": "-1.5"}, "dicom_query_cpu_seconds"),
    ],
)
def test_bad_values_name_the_setting(environ: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ)
    assert info.value.setting == setting


def test_entry_cache_size_and_off() -> None:
    assert load_settings(environ={}).dicom_entry_cache == 10_000
    off = load_settings(environ={"MWL_BROKER_DICOM_ENTRY_CACHE": "0"})
    assert off.dicom_entry_cache == 0


def test_unknown_key_in_file_names_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text("hl7_prot = 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=config)
    assert info.value.setting == f"{config}: hl7_prot"


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text("hl7_port = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=config)


def test_repr_hides_the_redis_password() -> None:
    s = load_settings(environ={"MWL_BROKER_REDIS_URL": "redis://:s3cret@db:6379/0"})
    assert "s3cret" not in repr(s)
    assert s.redis_url == "redis://:s3cret@db:6379/0"


def test_settings_are_immutable() -> None:
    s = Settings()
    with pytest.raises(AttributeError):
        s.hl7_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value"),
    [("dicom_character_set", "ISO_IR 999"), ("hl7_default_charset", "EBCDIC")],
)
def test_unknown_character_sets_are_refused_at_start_up(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(overrides={name: value})
    assert info.value.setting == name


def test_list_settings_from_toml_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text('hl7_accepted_senders = ["RIS", "HIS^CLINIC"]\n')
    s = load_settings(config_file=config, environ={"MWL_BROKER_HL7_PROCESSING_IDS": "P, D"})
    assert s.hl7_accepted_senders == ("RIS", "HIS^CLINIC")
    assert s.hl7_processing_ids == ("P", "D")
    assert "2.5.1" in s.hl7_versions


def test_empty_processing_id_list_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"MWL_BROKER_HL7_PROCESSING_IDS": ""})
    assert info.value.setting == "hl7_processing_ids"


def test_sender_charsets_from_a_toml_table(tmp_path: Path) -> None:
    config = tmp_path / "broker.toml"
    config.write_text('[broker.hl7_sender_charsets]\nRIS = "8859/1"\n"HIS^CLINIC" = "8859/2"\n')
    s = load_settings(config_file=config, environ={})
    assert dict(s.hl7_sender_charsets) == {"RIS": "8859/1", "HIS^CLINIC": "8859/2"}


def test_sender_charsets_from_the_environment() -> None:
    s = load_settings(
        environ={"MWL_BROKER_HL7_SENDER_CHARSETS": "APP=8859/1, APP2^FAC=UNICODE UTF-8"}
    )
    assert dict(s.hl7_sender_charsets) == {"APP": "8859/1", "APP2^FAC": "UNICODE UTF-8"}
    assert dict(load_settings(environ={}).hl7_sender_charsets) == {}


def test_sender_charsets_are_read_only() -> None:
    s = load_settings(environ={"MWL_BROKER_HL7_SENDER_CHARSETS": "APP=ASCII"})
    with pytest.raises(TypeError):
        s.hl7_sender_charsets["APP"] = "8859/1"  # type: ignore[index]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("APP=EBCDIC", "'EBCDIC'"),
        ("APP", "SENDER=CHARSET"),
        ("=8859/1", "non-empty"),
        ("APP=", "non-empty"),
    ],
)
def test_bad_sender_charsets_are_refused_at_start_up(value: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as info:
        load_settings(environ={"MWL_BROKER_HL7_SENDER_CHARSETS": value})
    assert "hl7_sender_charsets" in info.value.setting.lower()


@pytest.mark.parametrize("value", ["1gb", "512mb", "512MB", "1048576", "0", "2g"])
def test_redis_max_memory_takes_redis_sizes(tmp_path: Path, value: str) -> None:
    assert load_settings(environ={"MWL_BROKER_REDIS_MAX_MEMORY": value}).redis_max_memory == value
    config = tmp_path / "broker.toml"
    config.write_text("[broker]\nredis_max_memory = 0\n")  # a TOML number works too
    assert load_settings(config_file=config, environ={}).redis_max_memory == "0"


@pytest.mark.parametrize("value", ["1kb", "1000", "1.5gb", "lots", "-1", ""])
def test_redis_max_memory_refuses_what_redis_would_not_run_on(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"MWL_BROKER_REDIS_MAX_MEMORY": value})
    assert info.value.setting == "redis_max_memory"


def test_redis_server_binary_is_a_path_or_unset() -> None:
    assert load_settings(environ={}).redis_server_binary is None
    environ = {"MWL_BROKER_REDIS_SERVER_BINARY": "/usr/bin/redis-server"}
    assert load_settings(environ=environ).redis_server_binary == Path("/usr/bin/redis-server")


KEY_SECRET = "k" * 20 + "-the-site-key-secret"


def test_the_key_secret_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    assert load_settings(environ={}).redis_key_secret is None
    direct = load_settings(environ={"MWL_BROKER_REDIS_KEY_SECRET": KEY_SECRET})
    assert direct.redis_key_secret == KEY_SECRET and KEY_SECRET not in repr(direct)
    secret = tmp_path / "key.secret"
    secret.write_text(KEY_SECRET + "\n")
    env_file = load_settings(environ={"MWL_BROKER_REDIS_KEY_SECRET_FILE": str(secret)})
    assert env_file.redis_key_secret == KEY_SECRET


def test_the_settings_file_names_the_key_secret_file_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "key.secret").write_text(KEY_SECRET + "\n")
    config = tmp_path / "site" / "broker.toml"
    config.write_text('[broker]\nredis_key_secret_file = "key.secret"\n')
    s = load_settings(config_file=config, environ={})
    assert s.redis_key_secret == KEY_SECRET and KEY_SECRET not in repr(s)


@pytest.mark.parametrize(
    ("line", "setting"),
    [
        ('redis_key_secret_file = "missing.secret"', "redis_key_secret_file"),
        ("redis_key_secret_file = 3", "redis_key_secret_file"),
        ('redis_key_secret = "too short"', "redis_key_secret"),
        ("patient_alias_days = 0", "patient_alias_days"),
        ("patient_alias_days = 4000", "patient_alias_days"),
    ],
)
def test_bad_key_secret_and_alias_settings_name_the_setting(
    tmp_path: Path, line: str, setting: str
) -> None:
    config = tmp_path / "broker.toml"
    config.write_text(f"[broker]\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config_file=config, environ={})
    assert info.value.setting.endswith(setting)
    assert "too short" not in str(info.value)  # the value of a secret is never repeated
