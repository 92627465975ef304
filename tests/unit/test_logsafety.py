"""Log lines hold no patient data a library or an exception quotes, and nothing a sender
can forge; ``log_phi`` shows the details on a test system."""

from __future__ import annotations

import io
import logging
import sys
import warnings
from collections.abc import Iterator

import pytest
from pydicom import config
from pydicom.dataset import Dataset

from broker.common.logsafety import (
    ARGUMENT_LIMIT,
    MESSAGE_LIMIT,
    QuotedValues,
    SafeArguments,
    WithheldDetails,
    bounded,
    safety_handler,
)

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


def pynetdicom_record(msg: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord("pynetdicom.utils", level, __file__, 1, msg, None, None)


def logged(record: logging.LogRecord, *, log_phi: bool) -> str:
    out = io.StringIO()
    handler = safety_handler(out, log_phi=log_phi)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.handle(record)
    return out.getvalue()


def test_pynetdicom_lines_lose_what_they_quote_and_cannot_forge_a_line() -> None:
    """pynetdicom formats the raw AE title it refuses into its message (utils.set_ae)."""
    forged = "Invalid 'Calling AE Title' value 'CNRY\nERROR broker: forged' - must not contain"
    assert logged(pynetdicom_record(forged), log_phi=False) == (
        "ERROR pynetdicom.utils: Invalid '…' value '…' - must not contain\n"
    )
    # with log_phi the value is shown, still on one line
    assert logged(pynetdicom_record(forged), log_phi=True) == (
        "ERROR pynetdicom.utils: Invalid 'Calling AE Title' value "
        "'CNRY\\x0aERROR broker: forged' - must not contain\n"
    )


def test_pynetdicom_identifier_lines_and_exception_messages_are_withheld() -> None:
    line = "(0010,0010) PN [Müller^Jürgen]                          #   1 PatientName"
    assert "Müller" not in logged(pynetdicom_record(line, logging.INFO), log_phi=False)
    exception = ValueError(f"bad value {PATIENT_ID}")  # pynetdicom: LOGGER.exception(exc)
    text = logged(pynetdicom_record(exception), log_phi=False)
    assert text == "ERROR pynetdicom.utils: ValueError: (details withheld: they may hold " \
        "patient data; log_phi = true shows them)\n"  # fmt: skip
    assert PATIENT_ID in logged(pynetdicom_record(exception), log_phi=True)


def test_a_library_message_is_bounded() -> None:
    text = logged(pynetdicom_record("x" * 100_000), log_phi=True)
    assert len(text) < MESSAGE_LIMIT + 100 and text.endswith("…(100000 chars)\n")


def test_a_traceback_another_handler_formatted_first_is_still_withheld() -> None:
    try:
        raise KeyError(PATIENT_ID)
    except KeyError:
        record = logging.LogRecord("broker.x", logging.ERROR, __file__, 1, "failed", None, None)
        record.exc_info = sys.exc_info()
    assert PATIENT_ID in logging.Formatter(FORMAT).format(record)  # caches the text
    assert PATIENT_ID not in WithheldDetails(FORMAT).format(record)
    assert PATIENT_ID in logging.Formatter(FORMAT).format(record)  # others keep theirs
