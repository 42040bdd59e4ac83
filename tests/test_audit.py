"""The audit log: one JSON line per hit, ids and spans only, surviving log rotation."""

from __future__ import annotations

import json
import time
from pathlib import Path

from gateway.proxy.audit import AuditLog
from gateway.sluice import Action, Hit, Reason


def _hit(rule: str = "secret") -> Hit:
    return Hit(rule, Action.REDACT, 3, 17, Reason.MATCH)


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_hit_is_one_json_line_with_ids_and_spans(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    audit.record("req-1", "default", "output", "choices[0].content", _hit())
    audit.close()
    [entry] = _lines(path)
    assert {k: entry[k] for k in ("request_id", "policy", "direction", "channel", "rule")} == {
        "request_id": "req-1",
        "policy": "default",
        "direction": "output",
        "channel": "choices[0].content",
        "rule": "secret",
    }
    assert (entry["action"], entry["start"], entry["end"], entry["reason"]) == (
        "redact",
        3,
        17,
        "match",
    )


def test_a_file_moved_away_while_open_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(path)
    audit.record("req-1", "p", "output", "c", _hit("first"))
    # logrotate's default: rename the live file; the next record must start a new one.
    deadline = time.monotonic() + 5
    while not path.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)  # the listener thread writes asynchronously
    path.rename(tmp_path / "audit.jsonl.1")
    audit.record("req-2", "p", "output", "c", _hit("second"))
    audit.close()
    assert [e["rule"] for e in _lines(tmp_path / "audit.jsonl.1")] == ["first"]
    assert [e["rule"] for e in _lines(path)] == ["second"]


def test_without_a_path_nothing_is_written(tmp_path: Path) -> None:
    audit = AuditLog(None)
    audit.record("req-1", "p", "output", "c", _hit())
    audit.close()
    assert list(tmp_path.iterdir()) == []
