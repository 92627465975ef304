"""The package as a site installs it: a wheel (not editable) in a venv of its own, served
from an empty directory with no settings file, the README's order sent, found with findscu.

The venv gets the run lock (requirements/run.txt, hashes checked), then the wheel with no
dependencies of its own, so what is tested is exactly what `make run` would install.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from tests.conftest import require_tool

REPO = Path(__file__).resolve().parents[2]
ORDER = REPO / "tests" / "data" / "orm_o01_nw_latin1.hl7"
_INSTALL_TIMEOUT = 600


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=_INSTALL_TIMEOUT,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the lock and the wheel built from this checkout; its bin/ folder."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", dist, REPO)  # fmt: skip
    wheels = list(dist.glob("mwl_broker-*.whl"))
    assert len(wheels) == 1, wheels
    venv = root / "venv"
    _run(sys.executable, "-m", "venv", venv)
    pip = (venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "-q")
    _run(*pip, "install", "--require-hashes", "-r", REPO / "requirements" / "run.txt")
    _run(*pip, "install", "--no-deps", wheels[0])
    return venv / "bin"


@pytest.fixture
def served(installed: Path, tmp_path: Path) -> Iterator[tuple[int, int]]:
    """``mwl-broker serve`` started in an empty directory; its MLLP and DICOM ports."""
    empty = tmp_path / "site"
    empty.mkdir()
    args = [installed / "mwl-broker", "serve", "--hl7-host", "127.0.0.1", "--hl7-port", "0",
            "--dicom-host", "127.0.0.1", "--dicom-port", "0", "--admin-port", "0"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MWL_BROKER_")}
    env.pop("PYTHONPATH", None)
    log = tmp_path / "broker.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            [str(a) for a in args],
            cwd=empty,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
        )
    try:
        banner = _banner(proc, log)
        hl7 = re.search(r"HL7 MLLP\s+127\.0\.0\.1:(\d+)", banner)
        dicom = re.search(r"DICOM MWL\s+127\.0\.0\.1:(\d+)", banner)
        assert hl7 and dicom, banner
        yield int(hl7[1]), int(dicom[1])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    assert (empty / "data").is_dir(), "the embedded Redis keeps its data in ./data"


def _banner(proc: subprocess.Popen[str], log: Path) -> str:
    """The lines up to 'Press Ctrl-C'; fails with the broker's log if it exits before."""
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            return "".join(lines)
    proc.wait(60)
    pytest.fail(f"mwl-broker exited with {proc.returncode} before it was ready:\n{log.read_text()}")


@pytest.mark.interop
def test_the_wheel_serves_from_an_empty_directory(
    installed: Path, served: tuple[int, int], tmp_path: Path
) -> None:
    hl7_port, dicom_port = served
    sent = _run(installed / "mwl-broker", "send", f"127.0.0.1:{hl7_port}", ORDER, cwd=tmp_path)
    assert ": AA ORM-1001" in sent, sent
    findscu = require_tool("findscu")
    out = tmp_path / "answers"
    out.mkdir()
    result = subprocess.run(
        [findscu, "-W", "-aec", "MWL_BROKER", "-X", "-od", str(out),
         "-k", "PatientName", "-k", "PatientID", "-k", "AccessionNumber",
         "-k", "(0040,0100)[0].Modality=CT", "127.0.0.1", str(dicom_port)],
        capture_output=True, timeout=60, check=False, env={**os.environ, "TCP_NODELAY": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    answers = [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
    assert [str(a.PatientName) for a in answers] == ["Müller^Jürgen^^Dr."]


def test_the_wheel_carries_the_default_mappings_and_the_init_template(
    installed: Path, tmp_path: Path
) -> None:
    out = _run(installed / "mwl-broker", "init", tmp_path / "site", cwd=tmp_path)
    assert "Next: mwl-broker serve --config" in out
    for name in ("broker.toml", "mappings/orders.yaml", "mappings/adt.yaml", "mappings/README.md"):
        assert (tmp_path / "site" / name).is_file(), name
    assert (tmp_path / "site" / "mappings" / "orders.yaml").read_bytes() == (
        REPO / "mappings" / "orders.yaml"
    ).read_bytes()
