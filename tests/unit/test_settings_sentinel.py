"""The Redis Sentinel settings: checked at start-up, errors naming the setting, the
sentinels' password a secret (from a file, hidden in the repr)."""

from pathlib import Path

import pytest

from broker.errors import ConfigError
from broker.settings import load_settings
from broker.store.key_secret import key_secret
from broker.store.sentinel import sentinel_address, sentinel_label

_SENTINELS = {
    "MWL_BROKER_REDIS_SENTINELS": "10.0.0.11:26379, 10.0.0.12:26379,[::1]:26380",
    "MWL_BROKER_REDIS_SENTINEL_MASTER": "mwl",
}


def test_sentinels_from_the_environment_and_the_file(tmp_path: Path) -> None:
    s = load_settings(environ=_SENTINELS)
    assert s.redis_sentinels == ("10.0.0.11:26379", "10.0.0.12:26379", "[::1]:26380")
    assert s.redis_external and s.redis_url is None
    config = tmp_path / "broker.toml"
    config.write_text(
        '[broker]\nredis_sentinels = ["s1:26379", "s2:26379"]\nredis_sentinel_master = "mwl"\n'
    )
    assert load_settings(config_file=config, environ={}).redis_sentinels == (
        "s1:26379",
        "s2:26379",
    )
    assert not load_settings(environ={}).redis_external


@pytest.mark.parametrize(
    ("environ", "setting", "says"),
    [
        ({**_SENTINELS, "MWL_BROKER_REDIS_URL": "redis://db"}, "redis_sentinels", "redis_url"),
        ({**_SENTINELS, "MWL_BROKER_REDIS_SENTINELS": "s1"}, "redis_sentinels", "host:port"),
        ({**_SENTINELS, "MWL_BROKER_REDIS_SENTINELS": "s1:0"}, "redis_sentinels", "host:port"),
        ({**_SENTINELS, "MWL_BROKER_REDIS_SENTINELS": "s 1:1"}, "redis_sentinels", "host:port"),
        ({**_SENTINELS, "MWL_BROKER_REDIS_SENTINEL_MASTER": ""}, "redis_sentinel_master", "name"),
        ({"MWL_BROKER_REDIS_SENTINEL_MASTER": "mwl"}, "redis_sentinel_master", "only with"),
        ({"MWL_BROKER_REDIS_SENTINEL_PASSWORD": "pw"}, "redis_sentinel_password", "only with"),
        ({**_SENTINELS, "MWL_BROKER_REDIS_TLS_CERT": "/c.pem", "MWL_BROKER_REDIS_TLS_KEY": "/k"},
         "redis_tls_cert", "redis_tls_ca"),
    ],
)  # fmt: skip
def test_bad_sentinel_settings_name_the_setting(
    environ: dict[str, str], setting: str, says: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ)
    assert info.value.setting == setting
    assert says in info.value.message


def test_the_sentinels_password_is_a_secret_read_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "sentinel_password"
    secret.write_text("s3ntinel-pw\n")
    s = load_settings(
        environ={**_SENTINELS, "MWL_BROKER_REDIS_SENTINEL_PASSWORD_FILE": str(secret)}
    )
    assert s.redis_sentinel_password == "s3ntinel-pw"
    assert "s3ntinel-pw" not in repr(s)
    assert "s3ntinel-pw" not in sentinel_label(s)
    config = tmp_path / "broker.toml"
    config.write_text(
        '[broker]\nredis_sentinels = ["s1:26379"]\nredis_sentinel_master = "mwl"\n'
        'redis_sentinel_password_file = "sentinel_password"\n'
    )
    assert load_settings(config_file=config, environ={}).redis_sentinel_password == "s3ntinel-pw"


def test_a_sentinel_address_is_host_and_port() -> None:
    assert sentinel_address("sentinel-1.example.org:26379") == ("sentinel-1.example.org", 26379)
    assert sentinel_address("[fd00::11]:26379") == ("fd00::11", 26379)
    for bad in ("sentinel", ":26379", "s:70000", "s:port", "http://s:1"):
        with pytest.raises(ValueError, match="host:port"):
            sentinel_address(bad)


def test_the_key_secret_is_required_with_sentinels(tmp_path: Path) -> None:
    s = load_settings(environ={**_SENTINELS, "MWL_BROKER_DATA_DIR": str(tmp_path)})
    with pytest.raises(ConfigError) as info:
        key_secret(s)
    assert info.value.setting == "redis_key_secret"
    assert "redis_sentinels" in info.value.message
