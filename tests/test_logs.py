"""Process logging: text on a terminal, JSON lines otherwise, one line per record."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from typing import TextIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.logs import FIELDS, JsonFormatter, TextFormatter, chosen_format, configure_logging


@pytest.fixture
def terminal() -> Iterator[TextIO]:
    """A real pseudo-terminal's slave end, as a text stream."""
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as stream:
        yield stream
    os.close(master)


@pytest.fixture
def pipe() -> Iterator[TextIO]:
    read, write = os.pipe()
    with os.fdopen(write, "w") as stream:
        yield stream
    os.close(read)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """``configure_logging`` replaces the root handlers: give pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_auto_is_text_on_a_terminal_and_json_on_a_pipe(terminal: TextIO, pipe: TextIO) -> None:
    assert (chosen_format("auto", terminal), chosen_format("auto", pipe)) == ("text", "json")


def test_an_explicit_format_wins_over_the_stream(terminal: TextIO, pipe: TextIO) -> None:
    assert (chosen_format("json", terminal), chosen_format("text", pipe)) == ("json", "text")


def _record(message: str, fields: dict[str, object]) -> logging.LogRecord:
    record = logging.LogRecord(
        "sluicegate.test", logging.WARNING, __file__, 1, "%s", (message,), None
    )
    setattr(record, FIELDS, fields)
    return record


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(), st.dictionaries(st.text(), st.integers())
)


_BASE = ("time", "level", "logger", "message")
_NAMES = st.from_regex(r"[a-z_]{1,12}", fullmatch=True).filter(lambda name: name not in _BASE)


@settings(max_examples=100)  # formatting, not the sluice: fewer than the profile
@given(message=st.text(), fields=st.dictionaries(_NAMES, _VALUES))
def test_a_json_line_is_one_line_that_parses_back_to_its_fields(
    message: str, fields: dict[str, object]
) -> None:
    line = JsonFormatter().format(_record(message, fields))
    assert "\n" not in line  # a collector splits on newlines, whatever the message holds
    entry = json.loads(line)
    assert {k: entry[k] for k in ("level", "logger", "message")} == {
        "level": "warning",
        "logger": "sluicegate.test",
        "message": message,
    }
    assert entry["time"].endswith("Z")
    assert {k: entry[k] for k in fields} == fields


def test_text_lines_carry_the_fields_as_key_value_pairs() -> None:
    line = TextFormatter().format(
        _record("POST chat_completions 200", {"status": 200, "hits": {"secret": 2}, "id": "a b"})
    )
    assert line.endswith(
        ' WARNING sluicegate.test POST chat_completions 200 status=200 hits={"secret":2} id="a b"'
    )


def test_configured_logging_sends_every_logger_through_one_formatter(
    root_logging: None,
) -> None:
    stream = io.StringIO()  # not a terminal: auto means JSON
    configure_logging("info", "auto", stream)
    logging.getLogger("sluicegate").info("started")
    logging.getLogger("aiohttp.access").warning("from a library")
    logging.getLogger("sluicegate.proxy").debug("below the level")
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["logger"], e["message"]) for e in entries] == [
        ("sluicegate", "started"),
        ("aiohttp.access", "from a library"),
    ]
