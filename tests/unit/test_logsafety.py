"""Log lines hold no patient data a library or an exception quotes, and nothing a sender
can forge; ``log_phi`` shows the details on a test system."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator

import pytest
from pydicom import config
from pydicom.dataset import Dataset

from broker.logsafety import ARGUMENT_LIMIT, QuotedValues, SafeArguments, WithheldDetails, bounded

FORMAT = "%(levelname)s %(name)s: %(message)s"
NAME, PATIENT_ID = "Müller^Jürgen", "PAT-CANARY-1"  # not on the lines a traceback shows


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(WithheldDetails(FORMAT))
    handler.addFilter(SafeArguments())
    handler.addFilter(QuotedValues())
    logger = logging.getLogger("broker.test.logsafety")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, out
    finally:
        logger.removeHandler(handler)


def test_a_forged_control_id_cannot_write_a_new_line(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = captured
    logger.info("msg %s: accepted", "X\nINFO broker: admin logged in\x1b[2J")
    assert (
        out.getvalue()
        == "INFO broker.test.logsafety: msg X\\x0aINFO broker: admin logged in\\x1b[2J: accepted\n"
    )


def test_long_arguments_are_bounded(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = captured
    logger.info("msg %s", "9" * 100_000)
    line = out.getvalue()
    assert len(line) < ARGUMENT_LIMIT + 100 and line.endswith("…(100000 chars)\n")
    assert bounded("short") == "short"


def test_tracebacks_keep_the_frames_but_not_the_values(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = captured
    try:
        try:
            int(NAME)
        except ValueError as e:
            raise KeyError(PATIENT_ID) from e
    except KeyError:
        logger.exception("C-FIND from %s failed", "CT1")
    text = out.getvalue()
    assert "C-FIND from CT1 failed" in text and "Traceback (most recent call last)" in text
    assert "ValueError: (details withheld" in text and "KeyError: (details withheld" in text
    assert "test_tracebacks_keep_the_frames_but_not_the_values" in text  # the frames
    assert "Müller" not in text and "PAT-CANARY-1" not in text


def test_library_warnings_lose_the_values_they_quote(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = captured
    record = logging.LogRecord(
        "py.warnings", logging.WARNING, __file__, 1,
        "%s", ("pydicom/valuerep.py:440: UserWarning: Invalid value for VR DA: '1980-01-01'",),
        None,
    )  # fmt: skip
    logger.handle(record)
    expected = "pydicom/valuerep.py:440: UserWarning: Invalid value for VR DA: '…'\n"
    assert out.getvalue() == f"WARNING py.warnings: {expected}"


def test_captured_pydicom_warnings_reach_the_filter() -> None:
    """With warnings captured (as configure_logging does), pydicom's go through logging."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(QuotedValues())
    logger = logging.getLogger("py.warnings")
    logger.addHandler(handler)
    modes = (config.settings.reading_validation_mode, config.settings.writing_validation_mode)
    try:
        with warnings.catch_warnings():  # restores warnings.showwarning whatever happens
            warnings.simplefilter("always")
            logging.captureWarnings(False)  # whatever an earlier test left captured
            logging.captureWarnings(True)
            config.settings.reading_validation_mode = config.WARN  # a broker start sets IGNORE
            config.settings.writing_validation_mode = config.WARN
            Dataset().PatientBirthDate = "1980-01-01"
            logging.captureWarnings(False)
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = modes
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "Invalid value for VR DA" in text and "1980-01-01" not in text
