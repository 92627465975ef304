"""Several processes: ``roles`` and ``listen_reuse_port`` checked at start-up, errors naming
the setting; a process with only some roles, or sharing its ports, needs a shared Redis."""

from pathlib import Path

import pytest

from broker.cli.probe import probe_url
from broker.errors import ConfigError
from broker.settings import load_settings

_SHARED = {"MWL_BROKER_REDIS_URL": "redis://db:6379/0", "MWL_BROKER_REDIS_KEY_SECRET": "s" * 43}


def test_every_role_by_default_and_some_from_the_file_or_the_environment(tmp_path: Path) -> None:
    assert load_settings(environ={}).roles == ("hl7", "dicom", "admin", "outbound")
    assert not load_settings(environ={}).listen_reuse_port
    config = tmp_path / "broker.toml"
    config.write_text('[broker]\nroles = ["dicom", "admin"]\nlisten_reuse_port = true\n')
    s = load_settings(config_file=config, environ=_SHARED)
    assert s.roles == ("dicom", "admin") and s.listen_reuse_port
    env = {**_SHARED, "MWL_BROKER_ROLES": "hl7, outbound"}
    assert load_settings(environ=env).roles == ("hl7", "outbound")


@pytest.mark.parametrize(
    ("environ", "setting", "says"),
    [
        ({**_SHARED, "MWL_BROKER_ROLES": "hl7,mpps"}, "roles", "unknown role 'mpps'"),
        ({**_SHARED, "MWL_BROKER_ROLES": ""}, "roles", "at least one role"),
        ({**_SHARED, "MWL_BROKER_ROLES": "hl7,hl7"}, "roles", "names a role twice"),
        ({"MWL_BROKER_ROLES": "hl7,outbound"}, "roles", "set redis_url or redis_sentinels"),
        ({"MWL_BROKER_LISTEN_REUSE_PORT": "true"}, "listen_reuse_port", "share their data"),
        ({"MWL_BROKER_LISTEN_REUSE_PORT": "maybe"}, "MWL_BROKER_LISTEN_REUSE_PORT", "true/false"),
    ],
)
def test_a_wrong_value_is_an_error_naming_the_setting(
    environ: dict[str, str], setting: str, says: str
) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(environ=environ)
    assert e.value.setting == setting and says in str(e.value)


def test_every_role_in_the_embedded_redis_is_the_one_process_setup() -> None:
    env = {"MWL_BROKER_ROLES": "outbound,admin,dicom,hl7"}  # the order does not matter
    assert set(load_settings(environ=env).roles) == {"hl7", "dicom", "admin", "outbound"}


def test_the_probe_of_a_process_without_the_admin_role_names_roles() -> None:
    s = load_settings(environ={**_SHARED, "MWL_BROKER_ROLES": "hl7"})
    with pytest.raises(ConfigError) as e:
        probe_url(s, "ready")
    assert e.value.setting == "roles"
