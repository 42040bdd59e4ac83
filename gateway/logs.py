"""Process logging: every line through one formatter, JSON for a collector, text for a person.

``SLUICEGATE_LOG_FORMAT=auto`` picks text when the log stream (stderr) is a terminal and
JSON lines otherwise, so ``docker logs`` or a Kubernetes collector reads one JSON object
per line (startup, reloads and errors included) while a developer's terminal stays
readable. The stream is checked, not guessed from the environment: piping a terminal
session into ``jq`` gets JSON too.

A record's structured data travels in ``extra={FIELDS: {...}}``: JSON output merges it
into the object, text output appends it as ``key=value`` pairs. What may be logged is
decided by the callers (ids, labels and numbers, never request text), not here.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal, TextIO

import orjson

LogFormat = Literal["auto", "json", "text"]
FIELDS = "sluicegate_fields"
"""The ``extra`` key whose mapping becomes a record's structured fields."""


def utc_time(created: float) -> str:
    """RFC 3339 UTC with milliseconds, the form log collectors parse without help."""
    stamp = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return stamp.removesuffix("+00:00") + "Z"


def _fields(record: logging.LogRecord) -> Mapping[str, object]:
    fields = getattr(record, FIELDS, None)
    return fields if isinstance(fields, Mapping) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, then its fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": utc_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:
            # orjson refuses integers past 64 bits; a log line must never fail (logging
            # would print the record's arguments to stderr instead).
            return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """The classic one-line format, with a record's fields as ``key=value`` after it."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        pairs = [f"{key}={_text(value)}" for key, value in _fields(record).items()]
        return " ".join([super().formatMessage(record), *pairs])


def _text(value: object) -> str:
    """Plain words as they are; anything with spaces, quotes or structure as JSON."""
    if isinstance(value, str) and value and not any(c in value for c in ' "=\n'):
        return value
    return orjson.dumps(value, default=str).decode()


def chosen_format(setting: LogFormat, stream: TextIO) -> Literal["json", "text"]:
    if setting != "auto":
        return setting
    return "text" if stream.isatty() else "json"


def configure_logging(level: str, setting: LogFormat, stream: TextIO | None = None) -> None:
    """Route every logger of the process through one handler on ``stream`` (stderr)."""
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    as_json = chosen_format(setting, out) == "json"
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
