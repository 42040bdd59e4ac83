"""Fault injection upstream, through the real gateway, seen by the real openai SDK.

What ``test_chat`` already covers for chat (reset, truncate, malformed, a missing
``[DONE]``, a non-streamed 500) is not repeated; this adds the rest of the list in
docs/security.md ("Limits"): the same faults on the Responses and legacy Completions
routes, an upstream that stalls past ``SLUICEGATE_READ_TIMEOUT``, events cut in half by a
close or a reset, UTF-8 cut by the end of the stream, 5xx and 429 with and without bodies,
and an upstream that never ends. For every fault the properties are the same:

- the SDK raises its own clean error (never a hang, never a silent success);
- text the gateway held (a key's first characters) never reaches the client;
- the upstream request is released: its handler on the far side ends, because the gateway
  closed the connection or read the stream to its end;
- ``sluicegate_active_streams`` is back to 0.

The demo upstream's ``X-Demo-Fault`` covers what it can; ``FaultUpstream`` below writes
exactly scripted bytes and then ends, resets, stalls, or never stops.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from gateway.metrics import Metrics
from gateway.proxy.app import create_app
from gateway.proxy.protocol import GatewayRunner
from tests.e2e.conftest import Stack, e2e_settings, reply, run_stack

READ_TIMEOUT = 1.0
"""Seconds of upstream silence the gateway allows here: small, so a stall is quick."""
SECRET = "sk-Abc123Def456Ghi789"
#: The key's start: the gateway holds it (it may become a key), so after a fault it must
#: not have reached the client in any form.
HELD = "sk-Abc1"
PAD = " ".join(["word"] * 8)
#: With per-character chunking the demo's faults strike halfway: inside the key.
KEYED = f"{PAD} {SECRET} {PAD}"
MESSAGES = [{"role": "user", "content": "x"}]


def active_streams(metrics_text: str) -> float:
    found = re.search(r"^sluicegate_active_streams (\S+)$", metrics_text, re.MULTILINE)
    assert found is not None, "sluicegate_active_streams is not exported"
    return float(found.group(1))


# -- the demo upstream's faults on every streamed route ---------------------------------


@pytest.fixture(scope="module")
def demo() -> Iterator[Stack]:
    yield from run_stack(lambda url: e2e_settings(url, read_timeout=READ_TIMEOUT))


def _read_chat(client: openai.OpenAI, headers: dict[str, str]) -> str:
    stream = client.chat.completions.create(
        model="demo-chat", messages=MESSAGES, stream=True, extra_headers=headers
    )
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def _read_responses(client: openai.OpenAI, headers: dict[str, str]) -> str:
    text = ""
    for event in client.responses.create(
        model="demo-chat", input="x", stream=True, extra_headers=headers
    ):
        if event.type == "response.output_text.delta":
            text += event.delta
        elif event.type in ("error", "response.failed"):
            # The SDK hands these over as events; an application raises on them.
            raise openai.APIError(event.type, httpx.Request("POST", "/"), body=None)
    return text


def _read_completions(client: openai.OpenAI, headers: dict[str, str]) -> str:
    stream = client.completions.create(
        model="demo-chat", prompt="x", stream=True, extra_headers=headers
    )
    return "".join(c.choices[0].text for c in stream if c.choices)


READERS: dict[str, Callable[[openai.OpenAI, dict[str, str]], str]] = {
    "chat": _read_chat,
    "responses": _read_responses,
    "completions": _read_completions,
}


def _released(stack: Stack, before: int) -> bool:
    """Every demo stream started since ``before`` has ended, and no gateway stream is open."""
    streams = stack.demo_state.streams[before:]
    return (
        bool(streams)
        and all(s.outcome is not None for s in streams)
        and active_streams(stack.metrics_text()) == 0
    )


@pytest.mark.parametrize("api", READERS)
@pytest.mark.parametrize("fault", ["reset", "malformed", "truncate", "hang"])
def test_a_stream_fault_is_an_sdk_error_that_leaks_nothing(
    demo: Stack, api: str, fault: str
) -> None:
    before = len(demo.demo_state.streams)
    started = time.monotonic()
    with demo.client() as client, pytest.raises(openai.APIError) as raised:
        READERS[api](client, reply(KEYED, chunking="char", fault=fault))
    assert time.monotonic() - started < READ_TIMEOUT + 10  # a stall ends at the read timeout
    assert type(raised.value) is openai.APIError  # the gateway's error event, not a broken body
    assert demo.wait_for(lambda: _released(demo, before))


@pytest.mark.parametrize("api", READERS)
def test_text_held_when_the_stream_breaks_never_arrives(demo: Stack, api: str) -> None:
    """The raw bytes (not only what the SDK parses) of a stream reset inside the key."""
    path = {"chat": "/chat/completions", "responses": "/responses", "completions": "/completions"}
    body: dict[str, Any] = {"model": "demo-chat", "stream": True}
    body |= {"chat": {"messages": MESSAGES}, "responses": {"input": "x"}}.get(api, {"prompt": "x"})
    before = len(demo.demo_state.streams)
    with httpx.Client(timeout=10) as http:
        received = http.post(
            demo.gateway_url + path[api],
            json=body,
            headers={"Authorization": "Bearer k", **reply(KEYED, chunking="char", fault="reset")},
        )
    assert received.status_code == 200
    assert "upstream_error" in received.text
    texts = re.findall(r'"(?:delta|content|text)":("[^"]*")', received.text)
    sent = "".join(json.loads(m) for m in texts)
    assert PAD.split()[0] in sent  # what came before the key did arrive
    assert HELD[:3] not in sent
    assert demo.wait_for(lambda: _released(demo, before))


@pytest.mark.parametrize("api", ["chat", "responses", "completions"])
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    ("fault", "error"),
    [("http-500", openai.InternalServerError), ("http-429", openai.RateLimitError)],
)
def test_upstream_status_errors_reach_the_sdk_as_themselves(
    demo: Stack, api: str, stream: bool, fault: str, error: type[openai.APIStatusError]
) -> None:
    headers = reply("x", fault=fault)
    with demo.client() as client:
        create: dict[str, Any] = {
            "chat": lambda: client.chat.completions.create(
                model="demo-chat", messages=MESSAGES, stream=stream, extra_headers=headers
            ),
            "responses": lambda: client.responses.create(
                model="demo-chat", input="x", stream=stream, extra_headers=headers
            ),
            "completions": lambda: client.completions.create(
                model="demo-chat", prompt="x", stream=stream, extra_headers=headers
            ),
        }
        with pytest.raises(error) as raised:
            create[api]()
    assert isinstance(raised.value.body, dict)
    assert raised.value.body.get("message")  # the SDK unwrapped an OpenAI error
    assert demo.wait_for(lambda: active_streams(demo.metrics_text()) == 0)


# -- scripted bytes: FaultUpstream -------------------------------------------------------

FAULT_HEADER = "X-Fault-Script"
FOREVER_SECONDS = 60.0
"""How long ``comments`` and ``text`` go on at most: every test ends them long before."""


@dataclass(frozen=True, slots=True)
class Fault:
    """Write ``parts`` one by one (each flushed alone), then ``then``:

    ``eof`` ends the body cleanly, ``reset`` aborts the TCP connection, ``stall`` sends
    nothing more, ``comments`` sends SSE comments forever, ``text`` sends chat chunks of
    benign text forever."""

    parts: tuple[bytes, ...] = ()
    then: str = "eof"
    status: int = 200
    content_type: str = "text/event-stream"

    def header(self, key: str) -> dict[str, str]:
        script = {
            "key": key,
            "parts": [base64.b64encode(p).decode() for p in self.parts],
            "then": self.then,
            "status": self.status,
            "content_type": self.content_type,
        }
        return {FAULT_HEADER: json.dumps(script)}


@dataclass
class FaultUpstream:
    """How each scripted request ended on the upstream's side, by key."""

    endings: dict[str, str] = field(default_factory=dict)
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    async def answer(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        script = json.loads(request.headers[FAULT_HEADER])
        key, ending = script["key"], "gone"  # what a cancellation or a failed write leaves
        try:
            out = web.StreamResponse(status=script["status"])
            out.content_type = script["content_type"]
            await out.prepare(request)
            for part in script["parts"]:
                await out.write(base64.b64decode(part))
            ending = await self._then(request, out, script["then"])
        except ConnectionResetError:
            pass
        finally:
            self.endings[key] = ending
        return out

    async def _then(self, request: web.Request, out: web.StreamResponse, then: str) -> str:
        if then == "eof":
            await out.write_eof()
            return "eof"
        if then == "reset":
            assert request.transport is not None
            request.transport.abort()
            return "reset"
        deadline = asyncio.get_running_loop().time() + FOREVER_SECONDS
        count = 0
        while asyncio.get_running_loop().time() < deadline and not self.closing.is_set():
            if request.transport is None or request.transport.is_closing():
                return "gone"
            if then == "comments":
                await out.write(b": keep-alive\n\n")
            elif then == "text":
                await out.write(b"data: " + chunk(f"more text {count} ").encode() + b"\n\n")
            count += 1
            await asyncio.sleep(0.02)
        return "ran out"  # nobody stopped it: the test fails on this


def chunk(content: str | None = None, finish: str | None = None) -> str:
    delta = {"content": content} if content is not None else {"role": "assistant"}
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def event(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


@dataclass
class FaultStack:
    gateway_url: str
    upstream: FaultUpstream
    loop: asyncio.AbstractEventLoop
    _keys: Iterator[int] = field(default_factory=lambda: iter(range(1 << 30)))

    def client(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gateway_url, api_key="k", max_retries=0, **kwargs)

    def script(self, fault: Fault) -> tuple[str, dict[str, str]]:
        key = f"f{next(self._keys)}"
        return key, fault.header(key)

    def metrics_text(self) -> str:
        return httpx.get(self.gateway_url.removesuffix("/v1") + "/metrics").text

    def released(self, key: str, timeout: float = 10.0) -> str | None:
        """How the upstream request ``key`` ended, once it has and no stream is open."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ending = self.upstream.endings.get(key)
            if ending is not None and active_streams(self.metrics_text()) == 0:
                return ending
            time.sleep(0.02)
        return None


async def _start(upstream: FaultUpstream) -> tuple[list[web.AppRunner], str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", upstream.answer)
    upstream_runner = web.AppRunner(app, handler_cancellation=True)
    await upstream_runner.setup()
    await web.TCPSite(upstream_runner, "127.0.0.1", 0).start()
    upstream_url = f"http://127.0.0.1:{upstream_runner.addresses[0][1]}/v1"
    settings = e2e_settings(upstream_url, read_timeout=READ_TIMEOUT)
    gateway = GatewayRunner(create_app(settings, Metrics()))
    await gateway.setup()
    await web.TCPSite(gateway, "127.0.0.1", 0).start()
    return [gateway, upstream_runner], f"http://127.0.0.1:{gateway.addresses[0][1]}/v1"


@pytest.fixture(scope="module")
def faulty() -> Iterator[FaultStack]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    upstream = FaultUpstream()
    started: Future[Any] = asyncio.run_coroutine_threadsafe(_start(upstream), loop)
    runners, gateway_url = started.result(timeout=30)
    try:
        yield FaultStack(gateway_url, upstream, loop)
    finally:
        loop.call_soon_threadsafe(upstream.closing.set)
        for runner in runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


#: The start of an answer with the key's first characters in it: they are held.
OPENING = (event(chunk()), event(chunk("Your key is ")), event(chunk("sk-Abc1")))


def _chat(stack: FaultStack, headers: dict[str, str], **kwargs: Any) -> str:
    with stack.client(**kwargs) as client:
        stream = client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, extra_headers=headers
        )
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


@pytest.mark.parametrize(
    "fault",
    [
        Fault((*OPENING, b'data: {"id": "chatcmpl-1", "choi')),
        Fault((*OPENING, b'data: {"id": "chatcmpl-1", "choi'), then="reset"),
        Fault((*OPENING, b'data: {"id": "chatcmpl-1", "choi'), then="stall"),
        Fault((*OPENING, b'data: {"choices": [}\n\n', event(chunk("3Def456"))), then="stall"),
        Fault((*OPENING, b"data: " + chunk("Gr\u00fc\u00dfe").encode()[:-8])),
        Fault((*OPENING, b"data: " + chunk("caf\u00e9").encode()[:-4], b"\xc3")),
        Fault((*OPENING, b"data: " + chunk("x").encode() + b"\xed\xa0\x80\n\n")),
        Fault((*OPENING, b"event: error\ndata: \xff\xfe\n\n")),
        Fault((*OPENING, event('{"choices": ' + "[" * 300 + "]" * 300 + "}")), then="stall"),
        Fault((*OPENING, event('{"choices": [], "x": ' + "[" * 1000 + "]" * 1000 + "}"))),
    ],
    ids=[
        "half-event-then-close",
        "half-event-then-reset",
        "half-event-then-stall",
        "malformed-json-then-stall",
        "cut-inside-json",
        "cut-inside-a-utf8-character",
        "lone-surrogate-bytes",
        "invalid-utf8",
        "nested-300",
        "nested-1000",
    ],
)
def test_a_broken_stream_is_an_sdk_error_that_leaks_nothing(
    faulty: FaultStack, fault: Fault
) -> None:
    key, headers = faulty.script(fault)
    started = time.monotonic()
    with pytest.raises(openai.APIError) as raised:
        _chat(faulty, headers)
    assert type(raised.value) is openai.APIError  # an error event, not a broken body
    assert time.monotonic() - started < READ_TIMEOUT + 10
    assert faulty.released(key) in {"eof", "reset", "gone"}


def test_utf8_split_across_writes_arrives_whole(faulty: FaultStack) -> None:
    whole = event(chunk("Gr\u00fc\u00dfe aus K\u00f6ln \U0001f389 "))
    parts = tuple(whole[i : i + 1] for i in range(len(whole)))  # every byte its own write
    fault = Fault((event(chunk()), *parts, event(chunk(finish="stop")), event("[DONE]")))
    key, headers = faulty.script(fault)
    assert _chat(faulty, headers) == "Grüße aus Köln 🎉 "
    assert faulty.released(key) == "eof"


def test_held_text_is_never_sent_when_the_stream_breaks(faulty: FaultStack) -> None:
    """Raw bytes to the client: the key's held start is not in them, in any field. (A
    close, not a reset: a reset lets the kernel drop what the gateway had not read yet.)"""
    key, headers = faulty.script(Fault((*OPENING, b'data: {"id"')))
    with httpx.Client(timeout=10) as http:
        received = http.post(
            faulty.gateway_url + "/chat/completions",
            json={"model": "m", "messages": MESSAGES, "stream": True},
            headers={"Authorization": "Bearer k", **headers},
        )
    assert "Your key is " in received.text
    assert "sk-" not in received.text
    assert "upstream_error" in received.text
    assert faulty.released(key) == "eof"


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (500, b"", "application/json"),
        (503, b"upstream is down", "text/plain"),
        (502, b"<html>bad gateway</html>", "text/html"),
        (429, b"", "application/json"),
        (429, b"slow down", "text/plain"),
        (500, b'{"error": {"message": "boom", "type": "server_error"}}', "application/json"),
    ],
)
def test_an_error_status_with_any_body_is_the_sdks_status_error(
    faulty: FaultStack, stream: bool, status: int, body: bytes, content_type: str
) -> None:
    fault = Fault((body,) if body else (), status=status, content_type=content_type)
    key, headers = faulty.script(fault)
    with faulty.client() as client, pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(
            model="m", messages=MESSAGES, stream=stream, extra_headers=headers
        )
    assert raised.value.status_code == status
    assert isinstance(raised.value.body, dict)
    message = raised.value.body.get("message")
    assert isinstance(message, str)
    assert message
    assert faulty.released(key) == "eof"


def test_comments_forever_are_bounded_only_by_the_client(faulty: FaultStack) -> None:
    """An upstream that sends keep-alive comments forever: every read is upstream
    activity, so ``read_timeout`` never fires and the gateway has no total limit; the
    client, which sees nothing, times out. Its leaving must release upstream at once."""
    key, headers = faulty.script(Fault((*OPENING,), then="comments"))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        _chat(faulty, headers, timeout=3 * READ_TIMEOUT)
    assert time.monotonic() - started >= 3 * READ_TIMEOUT  # the gateway did not end it
    assert faulty.upstream.endings.get(key) is None or faulty.upstream.endings[key] == "gone"
    assert faulty.released(key) == "gone"


def test_text_forever_is_released_when_the_client_leaves(faulty: FaultStack) -> None:
    key, headers = faulty.script(Fault((event(chunk()),), then="text"))
    with faulty.client() as client:
        stream = client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, extra_headers=headers
        )
        for received, _ in enumerate(stream, 1):
            if received == 20:
                break
        stream.close()
    assert faulty.released(key) == "gone"


@pytest.mark.parametrize("depth", [300, 1000])
@pytest.mark.parametrize("status", [200, 500])
def test_a_deeply_nested_answer_is_a_clean_error(
    faulty: FaultStack, depth: int, status: int
) -> None:
    """orjson reads 1024 levels but writes 255: an answer between the two must not turn
    into a 500 with a traceback when the moderated body is written back."""
    answer = b'{"error": {"message": "m"}, "choices": [], "x": ' + b"[" * depth + b"]" * depth
    fault = Fault((answer + b"}",), status=status, content_type="application/json")
    key, headers = faulty.script(fault)
    with faulty.client() as client, pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="m", messages=MESSAGES, extra_headers=headers)
    assert raised.value.status_code == (502 if status == 200 else status)
    assert isinstance(raised.value.body, dict)
    message = str(raised.value.body.get("message"))
    assert ("not a JSON error" if status == 500 else "nested too deeply") in message
    assert faulty.released(key) == "eof"
