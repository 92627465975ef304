"""A site's own settings file and mapping files, ready to edit (``mwl-broker init DIR``).

``DIR/broker.toml`` (every setting listed with its default, commented),
``DIR/redis-key.secret`` (a new random ``redis_key_secret``, mode 0600, which
``broker.toml`` points at: ``broker.store.key_secret``) and ``DIR/mappings/`` (a
copy of the default mapping set shipped in the package, with its README). A file
that exists is never overwritten: a site's edits (and its secret) are not lost by
running it twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from broker.common import jsontext
from broker.errors import BrokerError
from broker.store.key_secret import write_secret
from broker.store.mapping_versions import PACKAGED_MAPPINGS, packaged_mapping_files

__all__ = ["SECRET_FILE", "SETTINGS_FILE", "site_files", "write_site"]

_TEMPLATE = "site_template.toml"
_MAPPINGS_README = "README.md"
SETTINGS_FILE = "broker.toml"
SECRET_FILE = "redis-key.secret"  # noqa: S105 - its name, not a secret


def site_files(directory: Path) -> dict[Path, str]:
    """Every text file ``init`` writes into ``directory``: path → text (the secret aside)."""
    root = directory.resolve()
    template = resources.files("broker").joinpath(_TEMPLATE).read_text(encoding="utf-8")
    settings = (
        template.replace("@DATA_DIR@", _toml_string(root / "data"))
        .replace("@MAPPINGS_DIR@", _toml_string(root / "mappings"))
        .replace("@KEY_SECRET_FILE@", _toml_string(root / SECRET_FILE))
    )
    files = {root / SETTINGS_FILE: settings}
    for name, text in packaged_mapping_files().items():
        files[root / "mappings" / name] = text
    readme = resources.files(PACKAGED_MAPPINGS).joinpath(_MAPPINGS_README)
    files[root / "mappings" / _MAPPINGS_README] = readme.read_text(encoding="utf-8")
    return files


def write_site(directory: Path) -> Iterator[Path]:
    """Write the site's files, yielding each path once it is written, the key secret last.

    BrokerError, before anything is written, if one of them exists; BrokerError naming
    the file if one cannot be written.
    """
    files = site_files(directory)
    secret = directory.resolve() / SECRET_FILE
    existing = sorted(str(path) for path in [*files, secret] if path.exists())
    if existing:
        raise BrokerError(
            f"init: {', '.join(existing)} already exist(s); nothing written "
            "(move them away, or edit them)"
        )
    for path, text in files.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as e:
            raise BrokerError(f"init: cannot write {path}: {e.strerror}") from e
        yield path
    try:
        write_secret(secret)
    except OSError as e:
        raise BrokerError(f"init: cannot write {secret}: {e.strerror}") from e
    yield secret


def _toml_string(path: Path) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return jsontext.dumps(str(path))
