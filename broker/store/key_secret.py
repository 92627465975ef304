"""The site secret that keys the pseudonyms in Redis key names (``redis_key_secret``).

Where it comes from (``broker.store.keys`` says what it keys):

1. the setting: the environment, ``MWL_BROKER_REDIS_KEY_SECRET_FILE``, or the
   settings file's ``redis_key_secret_file`` (``mwl-broker init`` writes a secret
   file next to ``broker.toml`` and points there);
2. with the embedded Redis and no setting: ``<data_dir>/redis/key-secret``, made at
   the first start (mode 0600, beside the AOF it belongs to), so ``make run`` works
   with nothing configured and the data directory stays whole;
3. with ``redis_url`` and no setting: none, and the broker refuses to start. Every
   broker on one Redis must use the same secret, and a secret made by each broker
   on its own disk would differ (each would miss the others' keys).

The secret must never change while the data lives: ``{p}:keyschema`` keeps its
fingerprint, and a broker started with another secret refuses to start
(``broker.store.key_migration``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from broker.errors import ConfigError
from broker.settings import Settings
from broker.store.keys import MIN_SECRET_BYTES, KeySchema

__all__ = ["EMBEDDED_SECRET_FILE", "key_schema", "key_secret", "new_secret", "write_secret"]

EMBEDDED_SECRET_FILE = Path("redis") / "key-secret"  # under data_dir


def new_secret() -> str:
    """A new random secret: 32 bytes, as 43 URL-safe characters."""
    return secrets.token_urlsafe(32)


def write_secret(path: Path) -> bool:
    """Write a new secret to ``path`` (mode 0600, its directory made 0700 if new); False when
    the file exists already (it is never overwritten: two processes may race here)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(new_secret() + "\n")
        f.flush()
        os.fsync(f.fileno())
    return True


def key_secret(settings: Settings) -> bytes:
    """The secret, from the settings or (embedded Redis only) the data directory."""
    if settings.redis_key_secret is not None:
        return settings.redis_key_secret.encode("utf-8")
    if settings.redis_external:
        raise ConfigError(
            "redis_key_secret",
            "is required with redis_url or redis_sentinels: every broker on that Redis must "
            "use the same one. "
            "Set MWL_BROKER_REDIS_KEY_SECRET_FILE (or redis_key_secret_file in the settings "
            "file) to a file holding it; mwl-broker init writes one, or: "
            "openssl rand -base64 32",
        )
    path = settings.data_dir / EMBEDDED_SECRET_FILE
    write_secret(path)  # the first start of this data directory
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("redis_key_secret", f"cannot read {path}: {e}") from None
    if len(text.encode("utf-8")) < MIN_SECRET_BYTES:
        raise ConfigError(
            "redis_key_secret", f"{path} holds no usable secret ({MIN_SECRET_BYTES}+ characters)"
        )
    return text.encode("utf-8")


def key_schema(settings: Settings) -> KeySchema:
    """The key schema of these settings, with its secret."""
    return KeySchema(settings.redis_key_prefix, key_secret(settings))
