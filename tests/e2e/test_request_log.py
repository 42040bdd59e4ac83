"""The request log and the audit log, through the real gateway, demo upstream and SDK.

One line per request carries ids, labels, counts and durations, never what was said;
the audit log carries one line per hit, a keyed hash of what matched if a key is set,
and the matched text only on opt-in; it survives logrotate and writes to stdout for a
container, where every line the process writes is then a JSON object.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.logs import FIELDS as LOG_FIELDS
from gateway.logs import JsonFormatter, TextFormatter
from gateway.proxy.headers import REQUEST_ID
from tests.e2e.conftest import POLICIES, Stack, e2e_settings, reply, run_stack

PROMPT_SECRET = "sk-PromptAbc123Def456"
ANSWER_SECRET = "sk-AnswerGhi789Jkl012"
PROMPT_WORDS = "tell me about marmalade"
ANSWER_WORDS = "Quince jelly wobbles"
CLIENT_KEY = "client-key-Qp9Wm2Xr"
HASH_KEY = "audit-key-0123456789abcdef"
FIELDS = {
    "time",
    "level",
    "logger",
    "message",
    "request_id",
    "method",
    "route",
    "status",
    "policy",
    "outcome",
    "duration_ms",
    "upstream_ttfb_ms",
    "ttft_ms",
    "bytes_out",
    "hits",
}


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Audit to a file, hashes keyed, no text."""
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    yield from run_stack(
        lambda upstream: e2e_settings(upstream, audit_log=audit, audit_hash_key=HASH_KEY)
    )


@pytest.fixture(scope="module")
def with_text(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Audit to a file with the matched text opted in, and no hash key."""
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    yield from run_stack(lambda upstream: e2e_settings(upstream, audit_log=audit, audit_text=True))


def _client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.gateway_url, api_key=CLIENT_KEY, max_retries=0)


def _chat(stack: Stack, prompt: str, answer: str, *, stream: bool, **demo: str) -> str:
    """One chat call, read to its end; returns the request id the gateway answered with
    (an error status or a stream ended by an error event included)."""
    try:
        raw = _client(stack).chat.completions.with_raw_response.create(
            model="demo-chat",
            messages=[{"role": "user", "content": prompt}],
            stream=stream,
            extra_headers=reply(answer, **demo),
        )
    except openai.APIStatusError as exc:
        return exc.response.headers[REQUEST_ID]
    parsed: Any = raw.parse()
    if stream:
        with contextlib.suppress(openai.APIError):
            for _ in parsed:
                pass
    return raw.headers[REQUEST_ID]


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = getattr(record, LOG_FIELDS, {})
    return fields


def _line(caplog: pytest.LogCaptureFixture, stack: Stack, request_id: str) -> logging.LogRecord:
    """The request's log record, once the gateway wrote it (a stream's, after its end)."""

    def found() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.name == "sluicegate.request" and _fields(r).get("request_id") == request_id
        ]

    assert stack.wait_for(lambda: bool(found()), timeout=10)
    [record] = found()
    return record


@pytest.mark.parametrize("stream", [True, False])
def test_one_json_line_per_request_with_ids_timings_and_hits_but_no_text(
    audited: Stack, caplog: pytest.LogCaptureFixture, stream: bool
) -> None:
    caplog.set_level(logging.INFO, logger="sluicegate.request")
    request_id = _chat(
        audited,
        f"{PROMPT_WORDS} {PROMPT_SECRET}",
        f"{ANSWER_WORDS} {ANSWER_SECRET} and hello",
        stream=stream,
    )
    record = _line(caplog, audited, request_id)
    entry = json.loads(JsonFormatter().format(record))
    assert set(entry) == FIELDS
    assert {k: entry[k] for k in ("method", "route", "status", "policy", "outcome")} == {
        "method": "POST",
        "route": "chat_completions",
        "status": 200,
        "policy": "test",
        "outcome": "completed",
    }
    assert (entry["level"], entry["logger"]) == ("info", "sluicegate.request")
    # the prompt's secret, the answer's, and the flagged greeting
    assert entry["hits"] == {"secret": 2, "greeting": 1}
    assert entry["bytes_out"] > len(ANSWER_WORDS)
    assert 0 < entry["upstream_ttfb_ms"] <= entry["duration_ms"]
    if stream:
        assert entry["upstream_ttfb_ms"] <= entry["ttft_ms"] <= entry["duration_ms"]
    else:
        assert entry["ttft_ms"] is None
    for line in (JsonFormatter().format(record), TextFormatter().format(record)):
        for text in (PROMPT_SECRET, ANSWER_SECRET, PROMPT_WORDS, ANSWER_WORDS, CLIENT_KEY):
            assert text not in line


@pytest.mark.parametrize(
    ("prompt", "answer", "demo", "status", "outcome", "hits"),
    [
        ("hi", "a nightingale sang", {}, 200, "cut_off", {"ban": 1}),
        ("a forbidden topic", "never sent", {}, 400, "blocked", {"input.block": 1}),
        ("hi", "one two three", {"fault": "reset"}, 200, "upstream_error", {}),
        ("hi", "one two three", {"fault": "http-429"}, 429, "upstream_error", {}),
    ],
)
def test_the_outcome_says_how_the_request_ended(
    audited: Stack,
    caplog: pytest.LogCaptureFixture,
    prompt: str,
    answer: str,
    demo: dict[str, str],
    status: int,
    outcome: str,
    hits: dict[str, int],
) -> None:
    caplog.set_level(logging.INFO, logger="sluicegate.request")
    request_id = _chat(audited, prompt, answer, stream=True, **demo)
    fields = _fields(_line(caplog, audited, request_id))
    assert (fields["status"], fields["outcome"], fields["hits"]) == (status, outcome, hits)


def test_a_client_that_leaves_mid_stream_is_logged_as_a_disconnect(
    audited: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sluicegate.request")
    raw = _client(audited).chat.completions.with_raw_response.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_headers=reply("word " * 200, pace_ms="20"),
    )
    stream = raw.parse()
    next(iter(stream))
    stream.close()
    fields = _fields(_line(caplog, audited, raw.headers[REQUEST_ID]))
    assert fields["outcome"] == "client_disconnect"
    assert fields["ttft_ms"] is not None


def test_probes_are_logged_at_debug_only(audited: Stack, caplog: pytest.LogCaptureFixture) -> None:
    root = audited.gateway_url.removesuffix("/v1")
    caplog.set_level(logging.INFO, logger="sluicegate.request")
    quiet = httpx.get(root + "/healthz").headers[REQUEST_ID]
    _line(caplog, audited, _chat(audited, "hi", "ok", stream=False))  # logged after the probe
    assert not [r for r in caplog.records if _fields(r).get("request_id") == quiet]
    caplog.set_level(logging.DEBUG, logger="sluicegate.request")
    loud = httpx.get(root + "/healthz").headers[REQUEST_ID]
    assert _line(caplog, audited, loud).levelno == logging.DEBUG


# -- the audit log ---------------------------------------------------------------------------


def _audit(stack: Stack) -> list[dict[str, Any]]:
    path = stack.settings.audit_log
    assert isinstance(path, Path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _audited(stack: Stack, request_id: str) -> list[dict[str, Any]]:
    assert stack.wait_for(lambda: any(e["request_id"] == request_id for e in _audit(stack)))
    return [e for e in _audit(stack) if e["request_id"] == request_id]


def test_audit_entries_carry_a_verifiable_keyed_hash_and_never_the_text(audited: Stack) -> None:
    request_id = _chat(audited, f"key {PROMPT_SECRET}", f"yours {ANSWER_SECRET}", stream=True)
    entries = {e["direction"]: e for e in _audited(audited, request_id)}
    for direction, secret in (("input", PROMPT_SECRET), ("output", ANSWER_SECRET)):
        entry = entries[direction]
        expected = hmac.new(HASH_KEY.encode(), secret.encode(), hashlib.sha256).hexdigest()
        assert (entry["rule"], entry["length"], entry["hmac_sha256"]) == (
            "secret",
            len(secret),
            expected,
        )
        assert "text" not in entry
    path = audited.settings.audit_log
    assert isinstance(path, Path)
    assert PROMPT_SECRET not in path.read_text()
    assert ANSWER_SECRET not in path.read_text()


def test_the_matched_text_only_on_opt_in_and_no_hash_without_a_key(with_text: Stack) -> None:
    request_id = _chat(with_text, f"key {PROMPT_SECRET}", "a nightingale", stream=False)
    entries = {e["rule"]: e for e in _audited(with_text, request_id)}
    assert entries["secret"]["text"] == PROMPT_SECRET
    assert entries["ban"]["text"] == "nightingale"
    assert not any("hmac_sha256" in e for e in entries.values())


def test_audit_file_moved_by_logrotate_while_the_gateway_writes(audited: Stack) -> None:
    path = audited.settings.audit_log
    assert isinstance(path, Path)
    first = _chat(audited, f"key {PROMPT_SECRET}", "ok", stream=False)
    _audited(audited, first)
    path.rename(path.with_suffix(".1"))  # logrotate's default: move; no copytruncate
    second = _chat(audited, f"key {PROMPT_SECRET}", "ok", stream=False)
    assert [e["request_id"] for e in _audited(audited, second)] == [second]
    rotated = path.with_suffix(".1").read_text()
    assert first in rotated
    assert second not in rotated


# -- a served process -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pump(pipe: Any, into: list[str]) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.extend(pipe), daemon=True)
    thread.start()
    return thread


def test_served_process_writes_audit_to_stdout_and_only_json_lines(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
    env.update(
        SLUICEGATE_DEMO_PACE="0",
        SLUICEGATE_AUDIT_LOG="-",
        SLUICEGATE_AUDIT_HASH_KEY=HASH_KEY,
        SLUICEGATE_DEFAULT_POLICY="test",
        SLUICEGATE_POLICY=str(POLICIES),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--upstream", "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    out: list[str] = []
    err: list[str] = []
    readers = [_pump(process.stdout, out), _pump(process.stderr, err)]
    try:
        deadline = time.monotonic() + 20
        while not any("Sluicegate on" in line for line in err):
            assert process.poll() is None and time.monotonic() < deadline, "".join(err)
            time.sleep(0.05)
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=CLIENT_KEY, max_retries=0
        )
        raw = client.chat.completions.with_raw_response.create(
            model="demo-chat",
            messages=[{"role": "user", "content": f"{PROMPT_WORDS} {PROMPT_SECRET}"}],
            extra_headers=reply(f"{ANSWER_WORDS} {ANSWER_SECRET}"),
        )
        request_id = raw.headers[REQUEST_ID]
        while not any(request_id in line for line in err):
            assert time.monotonic() < deadline, "".join(err)
            time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=30)
        for reader in readers:
            reader.join(timeout=10)
    audit = [json.loads(line) for line in out]
    assert {(e["request_id"], e["direction"], e["rule"]) for e in audit} == {
        (request_id, "input", "secret"),
        (request_id, "output", "secret"),
    }
    logs = [json.loads(line) for line in err]  # startup, the request, the drain: all JSON
    assert [e["logger"] for e in logs if e.get("request_id") == request_id] == [
        "sluicegate.request"
    ]
    everything = "".join(out + err)
    for text in (PROMPT_SECRET, ANSWER_SECRET, PROMPT_WORDS, ANSWER_WORDS, CLIENT_KEY):
        assert text not in everything
