"""The public corpus: real HL7 messages and DICOM worklists of other projects, read in place.

One place defines where it is: ``MWL_CORPUS`` (``make conformance CORPUS=DIR`` sets
it), else ``../shared/corpus`` beside the checkout. Only tests marked ``corpus`` read it;
``make test`` deselects them, so a clone anywhere passes on the project's own messages
(``tests/messages.py``), and ``make conformance`` runs them and fails if the corpus is missing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = "MWL_CORPUS"  # not MWL_BROKER_...: the broker takes every such variable for a setting


def corpus_root() -> Path:
    """The corpus folder (it may not exist)."""
    configured = os.environ.get(ENV)
    return Path(configured) if configured else REPO.parent / "shared" / "corpus"


def corpus_path(*parts: str) -> Path:
    """A folder or file of the corpus; a test that needs a missing one fails, never skips."""
    path = corpus_root().joinpath(*parts)
    if not path.exists():
        pytest.fail(f"the public corpus is missing: {path} (set {ENV}, or CORPUS=DIR for make)")
    return path


def hl7_corpus_messages() -> list[tuple[str, bytes]]:
    """Every message of the HL7 corpus files (some hold several, some FHS/BHS wrappers)."""
    root = corpus_path("hl7")
    found: list[tuple[str, bytes]] = []
    for path in sorted(root.rglob("*.hl7")):
        messages: list[list[bytes]] = []
        data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
        for line in re.split(rb"\r\n|\r|\n", data):
            if line.startswith(b"MSH"):
                messages.append([line])
            elif messages and line.strip():
                messages[-1].append(line)
        found += [(f"{path.relative_to(root)}#{i}", b"\r".join(m)) for i, m in enumerate(messages)]
    return found
