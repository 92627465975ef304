"""``mwl-broker init DIR``: a site's own settings file and mapping files, ready to edit.

Writes ``DIR/broker.toml`` (every setting listed with its default, commented),
``DIR/redis-key.secret`` (a new random ``redis_key_secret``, mode 0600, which
``broker.toml`` points at: ``broker.store.key_secret``) and ``DIR/mappings/`` (a copy
of the default mapping set shipped in the package, with its README), then prints
the command that serves with them. It never overwrites a file: a site's edits
(and its secret) are not lost by running it twice.
"""

from __future__ import annotations

import argparse
import shlex
from importlib import resources
from pathlib import Path

from broker.common import jsontext
from broker.errors import BrokerError
from broker.store.key_secret import write_secret
from broker.store.mapping_versions import PACKAGED_MAPPINGS, packaged_mapping_files

__all__ = ["add_init_parser", "run_init"]

_TEMPLATE = "site_template.toml"
_MAPPINGS_README = "README.md"
SECRET_FILE = "redis-key.secret"  # noqa: S105 - its name, not a secret


def add_init_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "init",
        help="write a settings file and the default mappings into DIR, for a site to edit",
        description=(
            "Write DIR/broker.toml (every setting with its default, commented), "
            f"DIR/{SECRET_FILE} (a new redis_key_secret, mode 0600) and DIR/mappings/ (a "
            "copy of the default mapping files), then print the command that serves with "
            "them. Existing files are never overwritten."
        ),
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="the site's directory (created if new)")


def site_files(directory: Path) -> dict[Path, str]:
    """Every file ``init`` writes into ``directory``: path → text."""
    root = directory.resolve()
    template = resources.files("broker").joinpath(_TEMPLATE).read_text(encoding="utf-8")
    settings = (
        template.replace("@DATA_DIR@", _toml_string(root / "data"))
        .replace("@MAPPINGS_DIR@", _toml_string(root / "mappings"))
        .replace("@KEY_SECRET_FILE@", _toml_string(root / SECRET_FILE))
    )
    files = {root / "broker.toml": settings}
    for name, text in packaged_mapping_files().items():
        files[root / "mappings" / name] = text
    readme = resources.files(PACKAGED_MAPPINGS).joinpath(_MAPPINGS_README)
    files[root / "mappings" / _MAPPINGS_README] = readme.read_text(encoding="utf-8")
    return files


def run_init(args: argparse.Namespace) -> int:
    files = site_files(args.dir)
    secret = args.dir.resolve() / SECRET_FILE
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
        print(f"wrote {path}")
    try:
        write_secret(secret)
    except OSError as e:
        raise BrokerError(f"init: cannot write {secret}: {e.strerror}") from e
    print(
        f"wrote {secret} (mode 0600: the secret that keys Redis key names; every broker on "
        "the same Redis needs it, and it must not change while the data lives)"
    )
    config = args.dir.resolve() / "broker.toml"
    print(f"\nNext: mwl-broker serve --config {shlex.quote(str(config))}")
    return 0


def _toml_string(path: Path) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return jsontext.dumps(str(path))
