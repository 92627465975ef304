"""Test certificates made with the openssl command: a CA, a server and named clients."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import require_tool


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _openssl(*args: str | Path) -> None:
    exe = require_tool("openssl", "openssl")
    result = subprocess.run(
        [exe, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def make_ca(folder: Path, name: str = "Test CA") -> Pair:
    folder.mkdir(parents=True, exist_ok=True)
    ca = Pair(folder / "ca.pem", folder / "ca.key")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", ca.key, "-out", ca.cert, "-days", "2", "-subj", f"/CN={name}")  # fmt: skip
    return ca


def issue(ca: Pair, folder: Path, name: str, *, dns: str = "", ip: str = "") -> Pair:
    """A certificate for CN ``name`` (and a DNS or IP subject alternative name) signed by ``ca``."""
    pair = Pair(folder / f"{name}.pem", folder / f"{name}.key")
    request = folder / f"{name}.csr"
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", pair.key, "-out", request, "-subj", f"/CN={name}")  # fmt: skip
    extensions = folder / f"{name}.ext"
    sans = [f"DNS:{dns}"] if dns else []
    sans += [f"IP:{ip}"] if ip else []
    extensions.write_text(f"subjectAltName={','.join(sans)}\n" if sans else "\n")
    _openssl("x509", "-req", "-in", request, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
             "-out", pair.cert, "-days", "2", "-extfile", extensions)  # fmt: skip
    return pair
