"""One huge request must not stall anyone else (docs/performance.md, "Big bodies").

While a request of megabytes is moderated (seconds of pattern scanning under the default
policy), ``/healthz`` and a benign stream through the real ``openai`` SDK keep answering
within a generous bound. Moderated on the event loop, as the gateway once did, both wait
for the whole scan: the probe's worst latency is then the big request's own time.

The big body is sized to take about ``TARGET_SECONDS`` to moderate on this machine
(measured on a sample first), up to the request size limit: the full 32 MB takes more
than a minute on a shared CI machine. Its last message names a confidential project, so
the whole body is scanned and then refused: the demo upstream shares the test's event
loop, and parsing megabytes there would stall the probe for reasons not the gateway's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.adapters import ADAPTERS
from gateway.adapters.inputs import moderate_request
from gateway.policy import load_file
from tests.e2e.conftest import Stack, e2e_settings, reply, run_stack

DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"
TARGET_SECONDS = 4.0
BOUND = 1.0  # seconds: generous, the measured figure is a few tens of milliseconds
LINE = "Please summarise this harmless paragraph about rivers, weather and gardens. "
MESSAGE = (LINE * (8192 // len(LINE) + 1))[:8192]
LIMIT = 32 * 1024 * 1024


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped default policy, with room for one search on a machine so loaded that
    a thread waits 100 ms for a core (a scan timeout blocks: ``on_error: block``)."""
    path = tmp_path_factory.mktemp("policy") / "default.yaml"
    text = DEFAULT_POLICY.read_text().replace(
        "settings:\n", "settings:\n  scan_timeout_ms: 10000\n", 1
    )
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def stack(policy: Path) -> Iterator[Stack]:
    """That policy, and scan time enough for the whole body."""
    yield from run_stack(
        lambda upstream: e2e_settings(
            upstream,
            policy=policy,
            default_policy="default",
            scan_budget_ms=600_000,
            max_request_bytes=LIMIT,
        )
    )


def _messages(count: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{i} {MESSAGE}"} for i in range(count)]


def _message_count(path: Path) -> int:
    """How many 8 KB messages take about ``TARGET_SECONDS`` to moderate here."""
    policy = load_file(path)
    sample = {"model": "demo-chat", "messages": _messages(32)}
    started = time.perf_counter()
    moderate_request(ADAPTERS["/v1/chat/completions"], sample, policy.input)
    per_message = (time.perf_counter() - started) / 32
    return max(64, min(int(TARGET_SECONDS / per_message), LIMIT // 8300))


def _probe(url: str, done: threading.Event) -> list[float]:
    latencies: list[float] = []
    with httpx.Client() as client:
        while not done.is_set():
            started = time.perf_counter()
            assert client.get(url, timeout=60).status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
    return latencies


def _stream_gaps(client: openai.OpenAI) -> list[float]:
    """Seconds before each chunk of one paced benign stream (the first: from the request)."""
    gaps: list[float] = []
    last = time.perf_counter()
    stream = client.chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "hello"}],
        stream=True,
        extra_headers=reply("a calm and harmless answer " * 4, pace_ms="40"),
    )
    text = ""
    for chunk in stream:
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    assert text == "a calm and harmless answer " * 4
    return gaps


def test_a_huge_request_does_not_stall_healthz_or_streams(stack: Stack, policy: Path) -> None:
    count = _message_count(policy)
    messages: list[Any] = _messages(count)
    messages.append({"role": "user", "content": "and the Project Nightingale budget"})
    client = stack.client(timeout=120)
    done = threading.Event()
    health = stack.gateway_url.removesuffix("/v1") + "/healthz"

    def big() -> float:
        started = time.perf_counter()
        try:
            with pytest.raises(openai.BadRequestError) as info:
                client.chat.completions.create(model="demo-chat", messages=messages)
        finally:
            done.set()
        assert info.value.code == "content_policy_violation"
        assert info.value.param == f"messages[{count}].content"  # scanned to the end
        return time.perf_counter() - started

    with ThreadPoolExecutor(2) as pool:
        probing = pool.submit(_probe, health, done)
        time.sleep(0.1)
        sending = pool.submit(big)
        time.sleep(0.3)  # the body is on its way; its scan has begun
        gaps: list[float] = []
        streams = 0
        while not done.is_set():
            gaps += _stream_gaps(client)
            streams += 1 if not done.is_set() else 0
        took = sending.result()
        latencies = probing.result()
    assert took > 1.5, f"the big request took only {took:.2f} s: too small to show a stall"
    assert max(latencies) < BOUND, f"healthz took {max(latencies):.2f} s (big: {took:.2f} s)"
    assert max(gaps) < BOUND, f"a stream waited {max(gaps):.2f} s (big: {took:.2f} s)"
    assert streams >= 1, "no benign stream ran entirely while the big request was moderated"
