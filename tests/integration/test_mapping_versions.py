"""Mapping versions in a real Redis: publish, validation, history, rollback, live reload."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from broker.errors import BrokerError, ConfigError
from broker.store.mapping_live import LiveMappings
from broker.store.mapping_versions import (
    PACKAGED_SOURCE,
    MappingVersions,
    diff,
    packaged_mapping_files,
    read_mapping_dir,
    seed_mapping_files,
    set_digest,
)
from tests.broker_runner import MAPPINGS


def default_files() -> dict[str, str]:
    return read_mapping_dir(MAPPINGS)


def with_admission_constant(files: dict[str, str], value: str) -> dict[str, str]:
    changed = dict(files)
    text = changed["orders.yaml"]
    new = text.replace("AdmissionID: PV1-19", f'AdmissionID: {{value: "{value}"}}')
    assert new != text
    changed["orders.yaml"] = new
    return changed


def test_publish_makes_numbered_versions_with_history(redis_client: redis.Redis) -> None:
    versions = MappingVersions(redis_client)
    assert versions.active() is None and list(versions.history()) == []
    first = versions.publish(default_files(), author="ana", comment="initial")
    assert first.created and first.version.number == 1
    second = versions.publish(
        with_admission_constant(default_files(), "X"), author="bo", comment=""
    )
    assert second.version.number == 2 and second.version.based_on == 1
    assert versions.active_number() == 2
    assert [(v.number, v.author) for v in versions.history()] == [(2, "bo"), (1, "ana")]
    assert versions.get(1) == first.version and versions.get(3) is None
    same = versions.publish(with_admission_constant(default_files(), "X"), author="c", comment="")
    assert not same.created and same.version.number == 2  # nothing new to publish
    assert versions.active_number() == 2


def test_an_invalid_set_is_refused_and_the_active_version_stays(redis_client: redis.Redis) -> None:
    versions = MappingVersions(redis_client)
    versions.publish(default_files(), author="a", comment="")
    broken = dict(default_files())
    broken["orders.yaml"] = broken["orders.yaml"].replace("PatientSex:", "PatientSx:")
    with pytest.raises(ConfigError) as refused:
        versions.publish(broken, author="a", comment="typo")
    assert "orders.yaml" in refused.value.setting and "PatientSex" in refused.value.message
    clash = dict(default_files()) | {"copy.yaml": default_files()["orders.yaml"]}
    with pytest.raises(ConfigError, match="claimed by both"):
        versions.publish(clash, author="a", comment="")
    assert versions.active_number() == 1 and len(list(versions.history())) == 1


def test_publish_with_expect_refuses_when_someone_published_meanwhile(
    redis_client: redis.Redis,
) -> None:
    versions = MappingVersions(redis_client)
    versions.publish(default_files(), author="a", comment="")
    versions.publish(with_admission_constant(default_files(), "B"), author="b", comment="")
    with pytest.raises(BrokerError, match="now v2, not v1"):
        versions.publish(
            with_admission_constant(default_files(), "A"), author="a", comment="", expect=1
        )
    assert versions.active_number() == 2


def test_rollback_publishes_the_old_files_as_a_new_version(redis_client: redis.Redis) -> None:
    versions = MappingVersions(redis_client)
    versions.publish(default_files(), author="a", comment="")
    versions.publish(with_admission_constant(default_files(), "X"), author="a", comment="")
    back = versions.rollback(1, author="b", comment="X was wrong")
    assert back.created and back.version.number == 3
    first = versions.get(1)
    assert first is not None and back.version.files == first.files
    assert back.version.comment == "rollback to v1: X was wrong"
    assert back.version.digest == set_digest(default_files())
    with pytest.raises(BrokerError, match="no mapping version 9"):
        versions.rollback(9, author="b", comment="")


def test_seed_only_fills_an_empty_redis(redis_client: redis.Redis) -> None:
    versions = MappingVersions(redis_client)
    seeded = versions.seed(default_files(), source="mappings")
    assert seeded.created and seeded.version.comment == "seeded from mappings"
    again = versions.seed(with_admission_constant(default_files(), "X"), source="elsewhere")
    assert not again.created and again.version.number == 1


def test_diff_names_the_files_and_lines() -> None:
    old = default_files()
    new = with_admission_constant(old, "X") | {"extra.yaml": "name: extra\n"}
    text = diff(old, new, "v1", "v2")
    assert "--- v1/orders.yaml\n+++ v2/orders.yaml" in text
    assert "-  AdmissionID: PV1-19" in text and '+  AdmissionID: {value: "X"}' in text
    assert "--- /dev/null\n+++ v2/extra.yaml" in text
    assert diff(old, dict(old), "v1", "v2") == ""


def test_live_mappings_seed_then_follow_published_versions(
    redis_client: redis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seed_dir = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, seed_dir)
    versions = MappingVersions(redis_client)
    live = LiveMappings(versions, seed_dir, poll_seconds=60)  # only notices can wake it
    assert live.load().number == 1
    first = live.current()
    assert first.version == "v1"
    assert all(spec.version.startswith("v1:") for spec in first.specs)
    live.start()
    try:
        versions.publish(with_admission_constant(default_files(), "X"), author="a", comment="")
        assert wait_for(lambda: live.number == 2), "the published version was not picked up"
        assert live.current() is not first and live.current().version == "v2"
        # a version this broker cannot validate (written around the check) is not taken
        caplog.set_level(logging.ERROR, logger="broker.store.mapping_live")
        bad = dict(default_files())
        bad["orders.yaml"] = "name: [unclosed\n"
        versions._write(bad, author="x", comment="broken")  # bypasses the validation
        assert wait_for(lambda: "does not validate here" in caplog.text)
        assert live.number == 2 and live.current().version == "v2"
    finally:
        live.stop()


def test_live_mappings_warn_when_the_files_differ_from_the_active_version(
    redis_client: redis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seed_dir = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, seed_dir)
    versions = MappingVersions(redis_client)
    versions.publish(with_admission_constant(default_files(), "X"), author="a", comment="")
    caplog.set_level(logging.WARNING, logger="broker.store.mapping_live")
    live = LiveMappings(versions, seed_dir)
    assert live.load().number == 1  # the Redis holds the truth once a version exists
    assert "differ from the active v1" in caplog.text and "mapping diff --dir" in caplog.text


def wait_for(condition: Callable[[], object], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_with_no_mappings_dir_the_packaged_set_seeds_version_1(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="broker.store.mapping_live")
    versions = MappingVersions(redis_client)
    live = LiveMappings(versions, None)
    version = live.load()
    assert version.number == 1 and version.files == packaged_mapping_files()
    assert version.files == default_files()  # the package ships the project's mappings/
    assert PACKAGED_SOURCE in caplog.text
    assert {spec.name for spec in live.current().specs} >= {"orders", "adt"}


def test_seed_files_name_their_source(tmp_path: Path) -> None:
    assert seed_mapping_files(None) == (packaged_mapping_files(), PACKAGED_SOURCE)
    shutil.copytree(MAPPINGS, tmp_path / "site")
    assert seed_mapping_files(tmp_path / "site") == (default_files(), str(tmp_path / "site"))
    with pytest.raises(BrokerError, match="does not exist"):
        seed_mapping_files(tmp_path / "missing")
