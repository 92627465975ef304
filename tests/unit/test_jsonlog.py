"""``log_format = "json"`` (broker.common.jsonlog) and the correlation ID
(broker.common.correlation): one object per line, the same withholding as text logs."""

from __future__ import annotations

import io
import logging
from collections.abc import Generator, Iterator

import pytest

from broker.common import correlation
from broker.common.jsontext import loads
from broker.common.logsafety import safety_handler


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    logger = logging.getLogger("broker.test.jsonlog")
    handler = safety_handler(stream, log_format="json")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [loads(line) for line in stream.getvalue().splitlines()]


def test_one_object_per_line_with_time_level_logger_message_and_fields(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_log
    logger.info("msg %s: %d entries", "CTRL\nforged", 2, extra=correlation.fields(entries=["e1"]))
    (line,) = _lines(stream)
    assert line["level"] == "INFO" and line["logger"] == "broker.test.jsonlog"
    assert line["message"] == "msg CTRL\\x0aforged: 2 entries"  # escaped as in text logs
    assert line["entries"] == ["e1"] and "correlation_id" not in line
    assert str(line["time"]).endswith("+00:00")


def test_the_current_correlation_id_is_on_each_line(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_log
    correlation.using("m-0123", lambda: logger.warning("inside"))
    logger.warning("outside")
    inside, outside = _lines(stream)
    assert inside["correlation_id"] == "m-0123" and "correlation_id" not in outside


def test_exception_messages_are_withheld(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log
    name = "Zzcanary" + "name^Qqcanarygiven"  # not in the traceback's source line
    try:
        raise ValueError(name)
    except ValueError:
        logger.exception("failed")
    (line,) = _lines(stream)
    assert "ValueError" in str(line["exception"])
    assert "zzcanary" not in stream.getvalue().lower()


def test_correlated_steps_set_the_id_only_while_they_run() -> None:
    seen: list[str] = []

    def steps() -> Generator[int, str, str]:
        seen.append(correlation.current())
        reply = yield 1
        seen.append(correlation.current() + reply)
        try:
            yield 2
        except KeyError:
            seen.append(correlation.current() + " thrown")
        return "done"

    run = correlation.correlated("m-1", steps())
    assert next(run) == 1 and correlation.current() == ""
    assert run.send("/a") == 2 and correlation.current() == ""
    with pytest.raises(StopIteration) as stop:
        run.throw(KeyError("x"))
    assert stop.value.value == "done"
    assert seen == ["m-1", "m-1/a", "m-1 thrown"]


def test_digest_uses_the_keyed_pseudonym_when_given() -> None:
    plain = correlation.digest("m", "RIS|HOSP|CTRL-1")
    keyed = correlation.digest("m", "RIS|HOSP|CTRL-1", lambda kind, value: "ab" * 15)
    assert plain.startswith("m-") and len(plain) == 18 and "CTRL" not in plain
    assert keyed == "m-" + "ab" * 8
