"""Budgets, crossed for real: a ``sluicegate serve`` process in front of the hostile upstream.

Each test makes the upstream (or the client) push one budget past its limit: 100k
distinct choice indexes, 100k Responses output items, logprob entries and annotations
that never get their text, a catastrophically backtracking rule hit by many choices
and by many prompt fields. The real openai SDK must raise the clean error, the metric
must count it, nothing held may reach the client, and the gateway's resident memory
(``VmRSS`` of the serving process, read from ``/proc``) must stay bounded. Without the
budgets the same answers grew the process by 370-580 MB (issue 13).

The memory and channel budgets keep their defaults (they are what production runs
with); only the scan budget is lowered, so the timing test stays short.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from gateway.settings import Settings
from tests.e2e.conftest import POLICIES
from tests.hostile_upstream import (
    HOSTILE_STATE,
    SCRIPT_HEADER,
    HostileState,
    Script,
    body,
    create_hostile_app,
    sse,
)

SCAN_BUDGET_MS = 400
SCAN_TIMEOUT_MS = 100
#: A rule ``policy check`` accepts with a warning (polynomial): about 0.6 s per search on
#: 300 word characters that end without the ``!``, so each search runs to its timeout.
SLOW_POLICY = f"""\
version: 1
name: slow
settings:
  on_error: allow
  scan_timeout_ms: {SCAN_TIMEOUT_MS}
  max_hold_chars: 512
rules:
  - id: slow
    match: {{regex: '\\w+\\w+\\w+\\w+\\w+!'}}
    action: block
"""
SLOW_TEXT = "a" * 300 + " "
#: Generous: the memory one stream may keep under the default budgets is a few MB.
RSS_BOUND = 64 * 1024 * 1024
DEFAULTS = Settings(_env_file=None)  # type: ignore[call-arg]
CHANNELS, PENDING = DEFAULTS.max_stream_channels, DEFAULTS.max_pending_entries


@dataclass
class Gateway:
    """A gateway process, the hostile upstream it talks to, and clients for both."""

    process: subprocess.Popen[bytes]
    root: str
    upstream: HostileState
    sdk: openai.OpenAI = field(init=False)

    def __post_init__(self) -> None:
        self.sdk = openai.OpenAI(base_url=self.root + "/v1", api_key="test-key", max_retries=0)

    def rss(self) -> int:
        """Resident memory of the serving process, in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def exceeded(self, budget: str) -> float:
        text = httpx.get(self.root + "/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (
                    sample.name == "sluicegate_budget_exceeded_total"
                    and sample.labels.get("budget") == budget
                ):
                    return float(sample.value)
        return 0.0

    def script(self, script: Script, policy: str | None = None) -> dict[str, str]:
        headers = self.upstream.script(script)
        if policy is not None:
            headers["X-Sluicegate-Policy"] = policy
        return headers


async def _start_upstream() -> tuple[web.AppRunner, str, HostileState]:
    app = create_hostile_app()
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/v1", app[HOSTILE_STATE]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    policies = tmp_path_factory.mktemp("policies")
    shutil.copy(POLICIES / "test.yaml", policies / "test.yaml")
    (policies / "slow.yaml").write_text(SLOW_POLICY)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    started: Future[Any] = asyncio.run_coroutine_threadsafe(_start_upstream(), loop)
    runner, upstream_url, state = started.result(timeout=30)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
    env |= {
        "SLUICEGATE_DEFAULT_POLICY": "test",
        "SLUICEGATE_POLICY_RELOAD_SECONDS": "0",
        "SLUICEGATE_KEEPALIVE_SECONDS": "0",
        "SLUICEGATE_SCAN_BUDGET_MS": str(SCAN_BUDGET_MS),
        "SLUICEGATE_SCAN_BUDGET_MS_PER_MB": "0",  # the crafted text earns no extra time
    }
    serve = [sys.executable, "-m", "gateway", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*serve, "--upstream", upstream_url, "--policy", str(policies)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "the gateway exited"
            try:
                if httpx.get(root + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the gateway never became ready"
            time.sleep(0.1)
        yield Gateway(process, root, state)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


# -- upstream answers --------------------------------------------------------------------


def _chunk(choices: list[dict[str, Any]]) -> str:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": choices,
        }
    )


def _choice(index: int, content: str, **more: Any) -> dict[str, Any]:
    return {"index": index, "delta": {"content": content}, "finish_reason": None, **more}


def _response_event(kind: str, **fields: Any) -> tuple[str, str]:
    return kind, json.dumps({"type": kind, "sequence_number": 0, **fields})


def _response_created() -> tuple[str, str]:
    response = {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}
    return _response_event("response.created", response=response)


# -- what the client sees ----------------------------------------------------------------


def _stream_error(gateway: Gateway, create: Any) -> tuple[openai.APIError, list[Any]]:
    """Read a stream with the SDK until it raises; the error and what came before it."""
    received: list[Any] = []
    with pytest.raises(openai.APIError) as raised:
        received.extend(create())
    return raised.value, received


def _assert_budget_error(error: openai.APIError, budget: str, setting: str) -> None:
    assert error.code == "budget_exceeded"
    assert budget in error.message and setting in error.message


def _warm(gateway: Gateway) -> None:
    """One small answer of each kind first, so the code paths are loaded before measuring."""
    script = sse(_chunk([_choice(0, "hi", finish_reason="stop")]), done=True)
    chunks = gateway.sdk.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_headers=gateway.script(script),
    )
    assert [c.choices[0].delta.content for c in chunks if c.choices] == ["hi"]


# -- channels ----------------------------------------------------------------------------


def test_choice_indexes_past_the_channel_budget_end_the_stream(gateway: Gateway) -> None:
    _warm(gateway)
    held = _chunk([_choice(0, "Your key is sk-Abc12")])  # a key in progress: held
    flood = [_chunk([_choice(i, "x")]) for i in range(1, 100_001)]
    script = sse(held, *flood, done=True)
    before, counted = gateway.rss(), gateway.exceeded("stream_channels")
    error, chunks = _stream_error(
        gateway,
        lambda: gateway.sdk.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_headers=gateway.script(script),
        ),
    )
    grown = gateway.rss() - before
    _assert_budget_error(error, "stream_channels", "SLUICEGATE_MAX_STREAM_CHANNELS")
    indexes = {c.index for chunk in chunks for c in chunk.choices}
    assert 1 < len(indexes) <= CHANNELS  # it streamed, and stopped at the budget
    text = "".join(c.delta.content or "" for chunk in chunks for c in chunk.choices)
    assert "Your key is " in text and "sk-" not in text  # what was held never went out
    assert gateway.exceeded("stream_channels") == counted + 1
    assert grown < RSS_BOUND, f"RSS grew by {grown / 2**20:.0f} MB"


def test_responses_output_items_past_the_channel_budget_end_the_stream(gateway: Gateway) -> None:
    _warm(gateway)
    items = (
        _response_event(
            "response.output_item.added",
            output_index=o,
            item={"id": f"msg_{o}", "type": "message", "role": "assistant", "content": []},
        )
        for o in range(100_000)
    )
    script = sse(_response_created(), *items)
    before, counted = gateway.rss(), gateway.exceeded("stream_channels")
    error, events = _stream_error(
        gateway,
        lambda: gateway.sdk.responses.create(
            model="m", input="hi", stream=True, extra_headers=gateway.script(script)
        ),
    )
    grown = gateway.rss() - before
    _assert_budget_error(error, "stream_channels", "SLUICEGATE_MAX_STREAM_CHANNELS")
    assert 1 < len(events) <= CHANNELS + 1
    assert gateway.exceeded("stream_channels") == counted + 1
    assert grown < RSS_BOUND, f"RSS grew by {grown / 2**20:.0f} MB"


def test_a_whole_body_past_the_channel_budget_is_a_502(gateway: Gateway) -> None:
    choices = [
        {"index": i, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}
        for i in range(CHANNELS + 1)
    ]
    answer = {"id": "c", "object": "chat.completion", "created": 1, "model": "m"}
    counted = gateway.exceeded("stream_channels")
    with pytest.raises(openai.InternalServerError) as raised:
        gateway.sdk.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers=gateway.script(body(answer | {"choices": choices})),
        )
    assert raised.value.status_code == 502
    assert raised.value.response.headers["x-should-retry"] == "false"
    _assert_budget_error(raised.value, "stream_channels", "SLUICEGATE_MAX_STREAM_CHANNELS")
    assert gateway.exceeded("stream_channels") == counted + 1


# -- entries waiting for text ------------------------------------------------------------


def test_logprob_entries_without_text_past_the_budget_end_the_stream(gateway: Gateway) -> None:
    _warm(gateway)
    entries = [{"token": "a", "logprob": -0.5, "bytes": [97], "top_logprobs": []}] * 2000
    # A million entries, and not one character of text for them.
    events = [_chunk([{"index": 0, "delta": {}, "logprobs": {"content": entries}}])] * 500
    script = sse(*events, done=True)
    before, counted = gateway.rss(), gateway.exceeded("pending_entries")
    error, chunks = _stream_error(
        gateway,
        lambda: gateway.sdk.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            logprobs=True,
            extra_headers=gateway.script(script),
        ),
    )
    grown = gateway.rss() - before
    _assert_budget_error(error, "pending_entries", "SLUICEGATE_MAX_PENDING_ENTRIES")
    sent = [c.logprobs for chunk in chunks for c in chunk.choices if c.logprobs]
    assert not any(logprobs.content for logprobs in sent)  # nothing they cover was released
    assert gateway.exceeded("pending_entries") == counted + 1
    assert grown < RSS_BOUND, f"RSS grew by {grown / 2**20:.0f} MB"


def test_annotations_waiting_for_text_past_the_budget_end_the_stream(gateway: Gateway) -> None:
    _warm(gateway)
    annotation = {"type": "url_citation", "url": "https://example.com/", "title": "t"}
    waiting = (
        _response_event(
            "response.output_text.annotation.added",
            item_id="msg_1",
            output_index=0,
            content_index=0,
            annotation_index=n,
            annotation=annotation | {"start_index": 10**6, "end_index": 10**6 + 1},
        )
        for n in range(PENDING * 4)
    )  # they point far past any text, so every one waits
    script = sse(_response_created(), *waiting)
    before, counted = gateway.rss(), gateway.exceeded("pending_entries")
    error, _ = _stream_error(
        gateway,
        lambda: gateway.sdk.responses.create(
            model="m", input="hi", stream=True, extra_headers=gateway.script(script)
        ),
    )
    grown = gateway.rss() - before
    _assert_budget_error(error, "pending_entries", "SLUICEGATE_MAX_PENDING_ENTRIES")
    assert gateway.exceeded("pending_entries") == counted + 1
    assert grown < RSS_BOUND, f"RSS grew by {grown / 2**20:.0f} MB"


# -- scan time ---------------------------------------------------------------------------

#: Choices (or prompt fields) that each cost one full scan timeout: 8 s without the budget.
SLOW_CHANNELS = 80


def test_scan_time_is_one_budget_for_all_choices(gateway: Gateway) -> None:
    events = [_chunk([_choice(i, SLOW_TEXT)]) for i in range(SLOW_CHANNELS)]
    script = sse(*events, done=True)
    counted = gateway.exceeded("scan_time")
    started = time.monotonic()
    error, _ = _stream_error(
        gateway,
        lambda: gateway.sdk.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            n=SLOW_CHANNELS,
            extra_headers=gateway.script(script, policy="slow"),
        ),
    )
    took = time.monotonic() - started
    _assert_budget_error(error, "scan_time", "SLUICEGATE_SCAN_BUDGET_MS")
    assert took < SLOW_CHANNELS * SCAN_TIMEOUT_MS / 1000 / 2, f"took {took:.1f} s"
    assert gateway.exceeded("scan_time") == counted + 1


def test_scan_time_of_the_input_counts_too(gateway: Gateway) -> None:
    counted = gateway.exceeded("scan_time")
    messages: Any = [
        {"role": "user", "content": f"{SLOW_TEXT}{n}"} for n in range(SLOW_CHANNELS)
    ]  # each distinct, so none is answered from the per-request memo
    headers = gateway.script(body({"never": "sent"}), policy="slow")
    started = time.monotonic()
    with pytest.raises(openai.BadRequestError) as raised:
        gateway.sdk.chat.completions.create(model="m", messages=messages, extra_headers=headers)
    took = time.monotonic() - started
    _assert_budget_error(raised.value, "scan_time", "SLUICEGATE_SCAN_BUDGET_MS")
    assert took < SLOW_CHANNELS * SCAN_TIMEOUT_MS / 1000 / 2, f"took {took:.1f} s"
    assert gateway.exceeded("scan_time") == counted + 1
    sent = [r.headers.get(SCRIPT_HEADER) for r in gateway.upstream.requests]
    assert headers[SCRIPT_HEADER] not in sent  # refused before anything went upstream
