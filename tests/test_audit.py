"""The audit log: one JSON line per hit, ids and spans, a keyed hash, text only on opt-in;
written off the event loop, surviving log rotation, dropping (and counting) rather than
waiting when its writer falls behind."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.metrics import Metrics
from gateway.proxy.audit import AuditLog, audit_handler, open_audit_log
from gateway.settings import Settings
from gateway.sluice import Action, Hit, Matcher, Reason, Rule, SluiceConfig

MATCHED = "sk-Abc123Def456Ghi789"
KEY = b"0123456789abcdef-key"


def _hit(rule: str = "secret", matched: str = MATCHED) -> Hit:
    return Hit(rule, Action.REDACT, 3, 3 + len(matched), Reason.MATCH, matched=matched)


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class _Collect(logging.Handler):
    """Keeps each formatted line; ``gate`` (if set) holds the writer thread until opened."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.gate = gate

    def emit(self, record: logging.LogRecord) -> None:
        if self.gate is not None:
            self.gate.wait()
        self.lines.append(self.format(record))


def test_each_hit_is_one_json_line_with_ids_and_spans_and_no_text(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(audit_handler(path))
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
    assert (entry["action"], entry["start"], entry["end"], entry["length"]) == (
        "redact",
        3,
        3 + len(MATCHED),
        len(MATCHED),
    )
    assert str(entry["time"]).endswith("Z")
    assert "hmac_sha256" not in entry
    assert MATCHED not in path.read_text()


@settings(max_examples=100)  # formatting, not the sluice: fewer than the profile
@given(matched=st.text(min_size=1), include_text=st.booleans())
def test_a_key_adds_a_verifiable_hash_and_only_the_opt_in_adds_the_text(
    matched: str, include_text: bool
) -> None:
    handler = _Collect()
    audit = AuditLog(handler, hash_key=KEY, include_text=include_text)
    audit.record("req-1", "p", "output", "c", _hit(matched=matched))
    audit.close()
    [entry] = [json.loads(line) for line in handler.lines]
    expected = hmac.new(KEY, matched.encode(), hashlib.sha256).hexdigest()
    assert entry["hmac_sha256"] == expected
    assert entry.get("text") == (matched if include_text else None)


def test_a_hit_without_matched_text_gets_neither_hash_nor_text() -> None:
    """A classifier's hit: the segment's text is gone when the verdict comes back."""
    handler = _Collect()
    audit = AuditLog(handler, hash_key=KEY, include_text=True)
    audit.record("req-1", "p", "output", "c", Hit("harm", Action.BLOCK, 0, 40))
    audit.close()
    [entry] = [json.loads(line) for line in handler.lines]
    assert ("hmac_sha256" in entry, "text" in entry, entry["length"]) == (False, False, 40)


_PIECES = st.sampled_from(["sk-ab12cd", "halt", "see", "<", ">", " ", "a", "é"])
_RULES = (
    Rule("key", r"sk-[a-z0-9]{4,}", Action.REDACT),
    Rule("stop", r"halt", Action.BLOCK),
    Rule("look", r"\bsee\b", Action.FLAG),
    Rule("angle", r"<[a-z ]*>", Action.REDACT),  # long holds: the hold limit fires
)


@settings(max_examples=150)
@given(
    pieces=st.lists(_PIECES, max_size=30),
    cuts=st.lists(st.integers(1, 6), min_size=1),
    fail_closed=st.booleans(),
)
def test_every_pattern_hit_carries_exactly_the_text_of_its_span(
    pieces: list[str], cuts: list[int], fail_closed: bool
) -> None:
    """What the audit hashes is the span the hit names, whatever the chunking, for
    matches, hold-limit cuts and the flag lane alike."""
    text = "".join(pieces)
    config = SluiceConfig(
        enforce=Matcher([r for r in _RULES if r.action is not Action.FLAG], 1.0),
        observe=Matcher([r for r in _RULES if r.action is Action.FLAG], 1.0),
        max_hold=8,
        fail_closed=fail_closed,
    )
    sluice = config.open()
    hits: list[Hit] = []
    at = 0
    for size in itertools.cycle(cuts):
        if at >= len(text):
            break
        hits.extend(sluice.feed(text[at : at + size]).hits)
        at += size
    hits.extend(sluice.finish().hits)
    assert all(hit.matched == text[hit.start : hit.end] for hit in hits)
    assert MATCHED not in repr(_hit())  # and a hit printed never shows it


def test_a_file_moved_away_while_open_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    audit = AuditLog(audit_handler(path))
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


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    """The writer is stuck (a stalled disk): recording must return at once, every time."""
    metrics = Metrics()
    gate = threading.Event()
    handler = _Collect(gate)
    audit = AuditLog(handler, dropped=metrics.audit_dropped.inc, capacity=4)
    sent = 50

    def record_all() -> None:
        for number in range(sent):
            audit.record(f"req-{number}", "p", "output", "c", _hit())

    recorder = threading.Thread(target=record_all, daemon=True)
    recorder.start()
    recorder.join(timeout=10)
    blocked = recorder.is_alive()
    gate.set()  # let the writer go, so close() can drain
    recorder.join(timeout=10)
    audit.close()
    assert not blocked, "record() waited for the writer"
    dropped = metrics.registry.get_sample_value("sluicegate_audit_dropped_total")
    assert dropped is not None
    # What waited in the queue (4) and what the writer held (at most 1) was written.
    assert len(handler.lines) in (4, 5)
    assert len(handler.lines) + dropped == sent


def test_settings_choose_stdout_the_key_and_the_opt_in(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configured = Settings(
        _env_file=None,  # type: ignore[call-arg]
        audit_log="-",
        audit_hash_key="k" * 16,
        audit_text=True,
    )
    audit = open_audit_log(configured, Metrics())
    audit.record("req-1", "p", "input", "input:messages[0].content", _hit())
    audit.close()
    [entry] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert entry["text"] == MATCHED
    assert entry["hmac_sha256"] == hmac.new(b"k" * 16, MATCHED.encode(), "sha256").hexdigest()


def test_a_short_hash_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="audit_hash_key"):
        Settings(_env_file=None, audit_hash_key="short")  # type: ignore[call-arg]
