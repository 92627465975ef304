"""Adding and deleting mapping files through the service, with a real Redis: a deleted file
stays deleted when a broker starts again (its mappings directory still has it: the Redis
holds the truth), a running broker stops mapping its type, and ``export`` writes the
change to the directory (the file pruned, or written back after a rollback)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import redis

from broker.services.application import Services
from broker.services.mapping_changes import ChangeRefused
from broker.services.mappings import MappingChanges
from tests.broker_runner import MAPPINGS
from tests.integration.admin_helpers import admin_settings
from tests.integration.mapping_site import SITE_FILE, SITE_NAME


def broker(client: redis.Redis, seed_dir: Path) -> Services:
    """A broker process's services starting on ``client``: the active version loaded."""
    services = Services(admin_settings(mappings_dir=seed_dir), client)
    services.live_mappings.load()
    return services


def test_a_deleted_file_stays_deleted_on_restart_and_export_prunes_it(
    redis_client: redis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seed_dir = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, seed_dir)
    (seed_dir / SITE_NAME).write_text(SITE_FILE, encoding="utf-8")
    running = broker(redis_client, seed_dir)
    assert "OML^O21" in running.live_mappings.current().supported_types()

    delete = MappingChanges(deleted=(SITE_NAME,))
    result = running.mappings.publish(changes=delete, author="ed", comment="", expect=1)
    assert result.created and SITE_NAME not in result.version.files
    assert running.live_mappings.refresh()  # what the channel's notice makes it do
    assert "OML^O21" not in running.live_mappings.current().supported_types()
    with pytest.raises(ChangeRefused, match=r"^delete: v2 has no file"):
        running.mappings.publish(changes=delete, author="ed")

    caplog.set_level(logging.WARNING, logger="broker.store.mapping_live")
    again = broker(redis_client, seed_dir)  # the file is still in the seed directory
    assert again.live_mappings.number == 2
    assert "OML^O21" not in again.live_mappings.current().supported_types()
    assert f"the files in {seed_dir} differ from the active v2" in caplog.text

    report = again.mappings.export(prune=True)
    assert (seed_dir / SITE_NAME, "deleted") in report.files
    assert sorted(p.name for p in seed_dir.glob("*.yaml")) == sorted(result.version.files)
    caplog.clear()
    assert broker(redis_client, seed_dir).live_mappings.number == 2
    assert "differ from the active" not in caplog.text

    back = again.mappings.rollback(1, author="ed", comment="cardio again")
    assert SITE_NAME in back.version.files
    report = again.mappings.export()
    assert (seed_dir / SITE_NAME, "written") in report.files
    assert (seed_dir / SITE_NAME).read_text(encoding="utf-8") == SITE_FILE


def test_a_new_file_is_published_over_the_active_set_and_checked_first(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    services = broker(redis_client, MAPPINGS)
    add = MappingChanges(added={SITE_NAME: SITE_FILE})
    assert services.mappings.check(add) == ()
    assert services.mappings.diff_edited(add).text.startswith(
        f"--- /dev/null\n+++ edited/{SITE_NAME}"
    )
    published = services.mappings.publish(changes=add, author="ed")
    assert published.version.files[SITE_NAME] == SITE_FILE
    assert sorted(published.version.files) == sorted(
        [*services.mappings.version(1).files, SITE_NAME]
    )
    with pytest.raises(ChangeRefused, match=r"^add: v2 already has a file") as refused:
        services.mappings.check(add)
    assert refused.value.field == "add"
    everything = MappingChanges(deleted=tuple(published.version.files))
    with pytest.raises(ChangeRefused, match="keeps at least one file"):
        services.mappings.publish(changes=everything, author="ed")
    assert services.mapping_versions.active_number() == 2
