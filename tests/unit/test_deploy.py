"""The files of ``deploy/`` say what the broker understands: the settings they pass (files,
environment, secrets) load, every secret they read is provided, ports and labels agree,
and every health check is ``mwl-broker probe`` with the settings file the image has."""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker.cli.probe import probe_url
from broker.errors import ConfigError
from broker.settings import ENV_PREFIX, Settings, load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = ("docker-compose.yml", "compose-ha.yml", "compose-split.yml")
K8S = DEPLOY / "k8s"
CONFIG = "/etc/mwl-broker/broker.toml"  # where the image puts the settings file
SECRET_VALUE = "s" * 43  # a valid redis_key_secret, and a password


def compose(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))
    return loaded


def manifests() -> dict[str, dict[str, Any]]:
    """The Kubernetes objects by kind."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            found[doc["kind"]] = doc
    return found


def loaded(environ: dict[str, str], tmp_path: Path, config: str | None = None) -> Settings:
    """The settings an environment (and a settings file's text) gives: secrets read from
    ``*_FILE`` paths are given as files of valid values under ``tmp_path``."""
    env = {}
    for name, value in environ.items():
        if name.endswith("_FILE"):
            path = tmp_path / Path(value).name
            path.write_text(SECRET_VALUE, encoding="utf-8")
            value = str(path)
        env[name] = value
    config_file = None
    if config is not None:
        config_file = tmp_path / "broker.toml"
        config_file.write_text(config, encoding="utf-8")
    return load_settings(config_file=config_file, environ=env)


def broker_services(name: str) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose(name)["services"]
    return {n: s for n, s in services.items() if "build" in s}


def service_environ(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment: its ``env_file`` files (paths from ``deploy/``), then
    its ``environment``, which wins, as in Compose."""
    environ: dict[str, str] = {}
    for name in service.get("env_file", ()):
        environ.update(instance_environ(DEPLOY / name))
    environ.update({str(k): str(v) for k, v in service.get("environment", {}).items()})
    return environ


@pytest.mark.parametrize("name", COMPOSE)
def test_a_compose_files_brokers_get_settings_that_load(name: str, tmp_path: Path) -> None:
    brokers = broker_services(name)
    assert brokers
    for service in brokers.values():
        environ = service_environ(service)
        assert all(k.startswith(ENV_PREFIX) for k in environ)
        settings = loaded(environ, tmp_path)
        assert settings.redis_key_secret is not None
        # README "Deploying": a broker that exits (Redis lost) is restarted by Docker.
        assert service.get("restart") in ("on-failure", "unless-stopped", "always")


@pytest.mark.parametrize("name", COMPOSE)
def test_every_secret_a_compose_service_reads_is_declared_and_mounted(name: str) -> None:
    declared = set(compose(name)["secrets"])
    for service in compose(name)["services"].values():
        mounted = set(service.get("secrets", ()))
        assert mounted <= declared
        text = yaml.safe_dump(service)
        for secret in re.findall(r"/run/secrets/(\w+)", text):
            assert secret in mounted


def test_the_ha_compose_file_runs_two_brokers_on_sentinels(tmp_path: Path) -> None:
    brokers = broker_services("compose-ha.yml")
    assert len(brokers) == 2
    services = compose("compose-ha.yml")["services"]
    sentinels = [n for n, s in services.items() if "--sentinel" in yaml.safe_dump(s)]
    assert len(sentinels) == 3
    settings = loaded(service_environ(next(iter(brokers.values()))), tmp_path)
    named = {address.split(":")[0] for address in settings.redis_sentinels}
    assert named == set(sentinels)
    assert settings.redis_wait_replicas == 1
    published = [p.rsplit(":", 2)[1] for b in brokers.values() for p in b["ports"]]
    assert len(published) == len(set(published))  # each broker on ports of its own


def test_the_sample_settings_file_loads(tmp_path: Path) -> None:
    text = (DEPLOY / "broker.toml").read_text(encoding="utf-8")
    assert loaded({}, tmp_path, text).hl7_port == 2575


def test_the_deployment_gets_settings_that_load_and_secrets_that_exist(tmp_path: Path) -> None:
    objects = manifests()
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    environ = {e["name"]: e["value"] for e in container["env"]}
    config = objects["ConfigMap"]["data"]["broker.toml"]
    settings = loaded(environ, tmp_path, config)
    assert settings.admin_host == "127.0.0.1" and settings.redis_wait_replicas == 1
    keys = set(objects["Secret"]["stringData"])
    mount = next(m for m in container["volumeMounts"] if m["name"] == "secrets")["mountPath"]
    for name, value in environ.items():
        if name.endswith("_FILE"):
            assert value.startswith(mount + "/") and value.rsplit("/", 1)[1] in keys


def test_the_service_and_the_budget_select_the_deployments_pods() -> None:
    objects = manifests()
    pod = objects["Deployment"]["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert objects["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert objects["Service"]["spec"]["selector"].items() <= labels.items()
    selector = objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in objects["Service"]["spec"]["ports"]} <= set(ports)
    settings = load_settings(environ={})  # the ConfigMap keeps the default ports
    assert ports == {"mllp": settings.hl7_port, "dicom": settings.dicom_port}


def test_every_probe_is_mwl_broker_probe_on_the_image_settings() -> None:
    container = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        command = container[kind]["exec"]["command"]
        assert command[:2] == ["mwl-broker", "probe"] and command[2] in ("live", "ready")
        assert command[3:] == ["--config", CONFIG] and CONFIG in mounts
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    check = re.search(r"HEALTHCHECK .*\n\s+CMD (\[.*\])", dockerfile)
    assert check is not None
    assert yaml.safe_load(check.group(1)) == ["mwl-broker", "probe", "ready", "--config", CONFIG]
    assert f"deploy/broker.toml {CONFIG}" in dockerfile
    uid = re.search(r"useradd .*--uid (\d+)", dockerfile)
    security = manifests()["Deployment"]["spec"]["template"]["spec"]["securityContext"]
    assert uid is not None and security["runAsUser"] == int(uid.group(1))


def test_the_systemd_unit_serves_the_settings_file() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read_string((DEPLOY / "broker.service").read_text(encoding="utf-8"))
    start = unit["Service"]["ExecStart"].split()
    assert start[0].endswith("/mwl-broker") and start[1:] == ["serve", "--config", CONFIG]
    assert unit["Service"]["KillMode"] == "mixed"


def instance_environ(path: Path) -> dict[str, str]:
    """The ``NAME=value`` lines of an instance's environment file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def test_the_instances_of_one_host_share_a_redis_and_cover_every_role(tmp_path: Path) -> None:
    drop_in = configparser.ConfigParser(strict=False, interpolation=None)
    drop_in.read_string(
        (DEPLOY / "broker@.service.d" / "instances.conf").read_text(encoding="utf-8")
    )
    assert drop_in["Service"]["EnvironmentFile"] == "/etc/mwl-broker/%i.env"
    shared = {f"{ENV_PREFIX}REDIS_URL": "redis://db:6379/0",
              f"{ENV_PREFIX}REDIS_KEY_SECRET": SECRET_VALUE}  # fmt: skip
    instances = {
        path.stem: loaded({**shared, **instance_environ(path)}, tmp_path)
        for path in sorted((DEPLOY / "instances").glob("*.env"))
    }
    assert set(instances) == {"intake", "query"}
    roles = [role for s in instances.values() for role in s.roles]
    assert sorted(roles) == sorted(["hl7", "dicom", "admin", "outbound", "admin"])
    assert len({s.admin_port for s in instances.values()}) == len(instances)  # one probe each
    with pytest.raises(ConfigError, match="roles"):  # the embedded Redis serves one process
        loaded(instance_environ(DEPLOY / "instances" / "query.env"), tmp_path)


def test_the_split_compose_file_runs_the_systemd_instances_roles(tmp_path: Path) -> None:
    """Two brokers with the roles of ``instances/*.env`` on one Redis with AOF; each
    publishes the ports of its own roles only, and checks its health with its own /readyz."""
    services = compose("compose-split.yml")["services"]
    redis_command = " ".join(services["redis"]["entrypoint"])
    assert "--appendonly yes" in redis_command and "--appendfsync always" in redis_command
    brokers = broker_services("compose-split.yml")
    assert set(brokers) == {"intake", "query"}
    image_config = (DEPLOY / "broker.toml").read_text(encoding="utf-8")
    found = {}
    for name, service in brokers.items():
        assert service["env_file"] == [f"instances/{name}.env"]
        s = found[name] = loaded(service_environ(service), tmp_path, image_config)
        assert s.redis_url is not None and s.redis_url.startswith("redis://redis:")
        listeners = {"hl7": s.hl7_port, "dicom": s.dicom_port}
        published = {int(p.rsplit(":", 1)[1]) for p in service["ports"]}
        assert published == {port for role, port in listeners.items() if role in s.roles}
        command = service["healthcheck"]["test"]
        assert command == ["CMD", "mwl-broker", "probe", "ready", "--config", CONFIG]
        assert "admin" in s.roles and probe_url(s, "ready").endswith(f":{s.admin_port}/readyz")
    assert set(found["intake"].roles) == {"hl7", "outbound", "admin"}
    assert set(found["query"].roles) == {"dicom", "admin"}
    assert found["intake"].admin_port != found["query"].admin_port  # as the systemd instances
