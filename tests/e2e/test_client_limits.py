"""What a misbehaving or hostile client gets, over real sockets: malformed HTTP, slow
headers and bodies, idle connections, too many requests at once, credentials the
upstream must not see, and a protected ``/metrics``. Nothing a client sent is ever
echoed back or written to a log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import pytest
from aiohttp import web

from gateway.proxy.protocol import GatewayRunner, describe
from tests.e2e.conftest import Stack, e2e_settings, reply, run_stack

SECRET = "sk-client-Zx9Qw8Er7Ty6Ui5Op4"
TIMEOUT = 0.6  # the strict stack's header and body timeouts


@pytest.fixture(scope="module")
def strict() -> Iterator[Stack]:
    """Keys everywhere, tight client timeouts, two moderated requests at a time."""
    yield from run_stack(
        lambda upstream: e2e_settings(
            upstream,
            upstream_api_key="sk-upstream-secret",
            api_keys="key-one",
            metrics_key="metrics-secret",
            client_header_timeout=TIMEOUT,
            client_body_timeout=TIMEOUT,
            max_concurrent_requests=2,
        )
    )


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes

    def error(self) -> dict[str, object]:
        """The OpenAI-format error, checked for its shape."""
        assert self.headers["content-type"].startswith("application/json"), self.raw
        body = json.loads(self.body)
        assert set(body) == {"error"}
        error = body["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["param"] is None
        return dict(error)


def _port(stack: Stack) -> int:
    return int(stack.gateway_url.removesuffix("/v1").rsplit(":", 1)[1])


def _parse(raw: bytes) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(lines[0].split()[1]), headers, body, raw)


def _read_all(sock: socket.socket, limit: float = 10.0) -> bytes:
    sock.settimeout(limit)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def send_raw(stack: Stack, data: bytes) -> Reply:
    """One request as raw bytes; the answer read until the gateway closes the connection."""
    with socket.create_connection(("127.0.0.1", _port(stack)), timeout=10) as sock:
        sock.sendall(data)
        return _parse(_read_all(sock))


def _assert_no_secret(caplog: pytest.LogCaptureFixture, *also: bytes) -> None:
    for record in caplog.records:
        text = record.getMessage() + (describe(record.exc_info[1]) if record.exc_info else "")
        assert SECRET not in text, record
        assert record.exc_info is None, record  # tracebacks would carry exception messages
        assert not record.name.startswith("aiohttp.server"), record
    for data in also:
        assert SECRET.encode() not in data


# -- requests aiohttp's parser rejects ---------------------------------------------------------

CHAT_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer key-one\r\n"
MALFORMED = {
    "bad request line": (
        b"GET /v1/models " + SECRET.encode() + b" HTTP/1.1\r\nHost: gw\r\n\r\n",
        "invalid_request_line",
    ),
    "not HTTP at all": (b"\x16\x03\x01" + SECRET.encode() + b"\r\n\r\n", "invalid_request_line"),
    "header line without a colon": (
        b"GET /healthz HTTP/1.1\r\nHost: gw\r\nAuthorization Bearer "
        + SECRET.encode()
        + b"\r\n\r\n",
        "malformed_http",
    ),
    "control character in a header": (
        b"GET /healthz HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "
        + SECRET.encode()
        + b"\x01\r\n\r\n",
        "malformed_http",
    ),
    "header too long": (
        b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Key: "
        + SECRET.encode()
        + b"a" * 9000
        + b"\r\n\r\n",
        "request_head_too_large",
    ),
    "request line too long": (
        b"GET /healthz?k=" + SECRET.encode() + b"a" * 9000 + b" HTTP/1.1\r\nHost: gw\r\n\r\n",
        "request_head_too_large",
    ),
    "too many headers": (
        b"GET /healthz HTTP/1.1\r\nHost: gw\r\n"
        + b"".join(b"X-%d: %s\r\n" % (i, SECRET.encode()) for i in range(200))
        + b"\r\n",
        "malformed_http",
    ),
    "invalid Content-Length": (
        CHAT_HEAD + b"Content-Length: 12" + SECRET.encode() + b"\r\n\r\n{}",
        "malformed_http",
    ),
    "two Content-Lengths": (
        CHAT_HEAD + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        "malformed_http",
    ),
    "bad chunk size": (
        CHAT_HEAD
        + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n"
        + SECRET.encode()
        + b"\r\n0\r\n\r\n",
        "malformed_http",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_parser_rejections_are_openai_errors_that_echo_nothing(
    strict: Stack, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    data, code = MALFORMED[case]
    answer = send_raw(strict, data)
    assert answer.status == 400
    error = answer.error()
    assert (error["type"], error["code"]) == ("invalid_request_error", code)
    _assert_no_secret(caplog, answer.raw)
    assert any(r.name == "sluicegate.http" for r in caplog.records)


def test_non_utf8_authorization_is_a_401(strict: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for value in (b"Bearer sk-\xff\xfe" + SECRET.encode(), b"Bearer", b"\xc3\x28", b""):
        answer = send_raw(
            strict,
            b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nAuthorization: "
            + value
            + b"\r\n\r\n",
        )
        assert answer.status == 401, answer.raw
        assert answer.error()["code"] == "invalid_api_key"
        _assert_no_secret(caplog, answer.raw)


def test_two_authorization_headers_are_a_401(strict: Stack) -> None:
    answer = send_raw(
        strict,
        b"GET /v1/models HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
        b"Authorization: Bearer key-one\r\nAuthorization: Bearer other\r\n\r\n",
    )
    assert answer.status == 401


def test_malformed_json_is_never_quoted(strict: Stack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    body = b'{"model": "demo-chat", "messages": [{"role": "user", "content": "' + SECRET.encode()
    answer = send_raw(
        strict,
        CHAT_HEAD + b"Connection: close\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body,
    )
    assert answer.status == 400
    assert "not valid JSON" in str(answer.error()["message"])
    _assert_no_secret(caplog, answer.raw)


async def test_an_unhandled_exception_is_a_500_that_quotes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The runner ``sluicegate serve`` uses, around an app whose handler fails."""
    caplog.set_level(logging.DEBUG)

    async def fail(request: web.Request) -> web.Response:
        raise ValueError(f"the header was {SECRET}")

    app = web.Application()
    app.router.add_get("/fail", fail)
    runner = GatewayRunner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        reader, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
        writer.write(b"GET /fail HTTP/1.1\r\nHost: gw\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), 10)  # the error closes the connection
        writer.close()
    finally:
        await runner.cleanup()
    answer = _parse(raw)
    assert answer.status == 500
    assert answer.error()["type"] == "server_error"
    _assert_no_secret(caplog, raw)
    (record,) = [r for r in caplog.records if r.name == "sluicegate.http"]
    assert record.levelno == logging.ERROR
    assert "ValueError at " in record.getMessage()
    assert "in fail" in record.getMessage()


def test_describe_gives_types_and_frames_never_messages() -> None:
    def fail() -> None:
        try:
            raise KeyError(SECRET)
        except KeyError as exc:
            raise ValueError(f"bad header {SECRET}") from exc

    with pytest.raises(ValueError, match="bad header") as info:
        fail()
    text = describe(info.value)
    assert SECRET not in text
    assert text.startswith("ValueError from KeyError at ")
    assert "in fail" in text


# -- slow and idle clients --------------------------------------------------------------------


def _closed_after(sock: socket.socket, trickle: bytes, limit: float = 10.0) -> float:
    """Send ``trickle`` a byte every 50 ms until the gateway hangs up; seconds it took."""
    started = time.monotonic()
    sock.settimeout(0.05)
    for i in range(int(limit / 0.05)):
        try:
            if trickle:
                sock.send(trickle[i % len(trickle) : i % len(trickle) + 1])
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started
    raise AssertionError("the gateway kept the connection open")


def test_slow_headers_are_cut_off(strict: Stack) -> None:
    with socket.create_connection(("127.0.0.1", _port(strict))) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n")
        took = _closed_after(sock, b"X-Slow-Header: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
    assert TIMEOUT * 0.8 < took < TIMEOUT + 2


def test_a_connection_that_sends_nothing_is_closed(strict: Stack) -> None:
    with socket.create_connection(("127.0.0.1", _port(strict))) as sock:
        assert _closed_after(sock, b"") < TIMEOUT + 2


def test_idle_keep_alive_is_closed(strict: Stack) -> None:
    with socket.create_connection(("127.0.0.1", _port(strict))) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert _closed_after(sock, b"") < TIMEOUT + 2


def test_a_slow_body_gets_a_408(strict: Stack) -> None:
    body = json.dumps(
        {"model": "demo-chat", "messages": [{"role": "user", "content": "x" * 400}]}
    ).encode()
    with socket.create_connection(("127.0.0.1", _port(strict))) as sock:
        sock.sendall(CHAT_HEAD + b"Content-Type: application/json\r\n")
        sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        started = time.monotonic()
        sock.settimeout(0.05)
        raw = b""
        for i in range(10, len(body)):
            try:
                sock.send(body[i : i + 1])
                raw += sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
            if raw.endswith(b"}"):
                break
        took = time.monotonic() - started
        raw += _read_all(sock, 5)
    answer = _parse(raw)
    assert answer.status == 408
    assert answer.error()["code"] == "request_timeout"
    assert answer.headers["connection"] == "close"
    assert answer.headers["x-should-retry"] == "false"
    assert TIMEOUT * 0.8 < took < TIMEOUT + 2
    assert 'sluicegate_rejected_requests_total{reason="body_timeout"}' in _metrics(strict)


def test_a_body_whose_framing_breaks_later_ends_at_the_body_timeout(strict: Stack) -> None:
    """aiohttp answers a chunk it cannot parse only once the handler has finished, so a
    request whose headers arrived first waits for the body timeout, then gets its 408."""
    with socket.create_connection(("127.0.0.1", _port(strict))) as sock:
        sock.sendall(CHAT_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        time.sleep(0.1)
        sock.sendall(b"2\r\n{}\r\nzz\r\n0\r\n\r\n")
        answer = _parse(_read_all(sock))
    assert answer.status == 408


EMBED_BODY = json.dumps({"model": "demo-embedding", "input": "a harmless sentence"}).encode()
EMBED_HEAD = (
    b"POST /v1/embeddings HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer key-one\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(EMBED_BODY)
)


def test_a_stalled_pass_through_upload_gets_a_408(strict: Stack) -> None:
    """A text-free route streams its body to upstream unread: a pause past the body
    timeout between two reads ends it, or the client would hold the upload forever."""
    with socket.create_connection(("127.0.0.1", _port(strict))) as sock:
        sock.sendall(EMBED_HEAD + EMBED_BODY[:10])
        started = time.monotonic()
        sock.settimeout(10)
        raw = sock.recv(65536)  # the answer comes at once; the close after a linger
        took = time.monotonic() - started
        raw += _read_all(sock)
    answer = _parse(raw)
    assert answer.status == 408
    assert answer.error()["code"] == "request_timeout"
    assert answer.headers["connection"] == "close"
    assert TIMEOUT * 0.8 < took < TIMEOUT + 2
    assert 'sluicegate_rejected_requests_total{reason="body_timeout"}' in _metrics(strict)


def test_a_slow_but_steady_pass_through_upload_is_forwarded(strict: Stack) -> None:
    """The timeout is per read, as nginx's: a big upload on a slow link may take longer
    than the timeout in all, as long as it never pauses that long."""
    pause = TIMEOUT / 3
    with socket.create_connection(("127.0.0.1", _port(strict))) as sock:
        sock.sendall(EMBED_HEAD)
        started = time.monotonic()
        for i in range(0, len(EMBED_BODY), 4):
            time.sleep(pause)
            sock.sendall(EMBED_BODY[i : i + 4])
        took = time.monotonic() - started
        sock.settimeout(10)
        head = sock.recv(65536)
    assert took > TIMEOUT * 2
    assert head.startswith(b"HTTP/1.1 200"), head[:200]


def test_an_unknown_policy_is_not_quoted_back(strict: Stack) -> None:
    """The header's value is the client's bytes: the error names the header only."""
    with pytest.raises(openai.BadRequestError) as info:
        _client(strict).chat.completions.create(
            model="demo-chat",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"X-Sluicegate-Policy": SECRET},
        )
    assert info.value.code == "unknown_policy"
    assert info.value.param == "X-Sluicegate-Policy"
    message = str(info.value.message)
    assert SECRET not in message and "sk-client" not in message
    assert "X-Sluicegate-Policy header" in message and "available: notice, test" in message


# -- concurrent requests ------------------------------------------------------------------------


def _client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.gateway_url, api_key="key-one", max_retries=0)


def _metrics(stack: Stack) -> str:
    root = stack.gateway_url.removesuffix("/v1")
    return httpx.get(f"{root}/metrics", headers={"Authorization": "Bearer metrics-secret"}).text


def test_past_the_concurrency_budget_a_429_with_retry_after(strict: Stack) -> None:
    started = len(strict.demo_state.streams)
    texts: list[str] = []

    def slow_stream() -> None:
        with _client(strict) as client:
            stream = client.chat.completions.create(
                model="demo-chat",
                messages=[{"role": "user", "content": "x"}],
                stream=True,
                extra_headers=reply("one two three four five six", pace_ms="150"),
            )
            texts.append("".join(c.choices[0].delta.content or "" for c in stream if c.choices))

    threads = [threading.Thread(target=slow_stream) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert strict.wait_for(
        lambda: (
            len(strict.demo_state.streams) == started + 2
            and all(s.outcome is None for s in strict.demo_state.streams[started:])
        )
    )
    with _client(strict) as client:
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(
                model="demo-chat",
                messages=[{"role": "user", "content": "x"}],
                extra_headers=reply("hi"),
            )
        assert info.value.code == "gateway_busy"
        assert info.value.response.headers["Retry-After"] == "1"
        # Text-free routes and health are not counted.
        root = strict.gateway_url.removesuffix("/v1")
        assert httpx.get(f"{root}/healthz").status_code == 200
        assert client.models.list().data
        for thread in threads:
            thread.join(timeout=30)
        assert texts == ["one two three four five six"] * 2
        assert 'sluicegate_rejected_requests_total{reason="concurrency"} 1.0' in _metrics(strict)
        out = client.chat.completions.create(
            model="demo-chat",
            messages=[{"role": "user", "content": "x"}],
            extra_headers=reply("hi"),
        )
        assert out.choices[0].message.content == "hi"


# -- credentials and /metrics ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/chat/completions", "/models"])
def test_no_client_credential_reaches_upstream(strict: Stack, path: str) -> None:
    credentials = {
        "x-api-key": SECRET,
        "api-key": SECRET,
        "X-Goog-Api-Key": SECRET,
        "Cookie": f"session={SECRET}",
        "Proxy-Authorization": f"Bearer {SECRET}",
    }
    request = httpx.Request(
        "POST" if path == "/chat/completions" else "GET",
        strict.gateway_url + path,
        headers={"Authorization": "Bearer key-one", **credentials, **reply("hi")},
        json={"model": "demo-chat", "messages": [{"role": "user", "content": "x"}]}
        if path == "/chat/completions"
        else None,
    )
    with httpx.Client() as client:
        assert client.send(request).status_code == 200
    sent = strict.demo_state.requests[-1].headers
    assert sent.getall("Authorization") == ["Bearer sk-upstream-secret"]
    assert not [name for name in credentials if name in sent]
    assert SECRET not in str(list(sent.items()))


def test_metrics_need_the_metrics_key(strict: Stack) -> None:
    url = strict.gateway_url.removesuffix("/v1") + "/metrics"
    for headers in ({}, {"Authorization": "Bearer key-one"}, {"Authorization": "Bearer nope"}):
        response = httpx.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
    response = httpx.get(url, headers={"Authorization": "Bearer metrics-secret"})
    assert response.status_code == 200
    assert "sluicegate_requests_total" in response.text


def test_metrics_are_open_without_a_metrics_key(stack: Stack) -> None:
    assert "sluicegate_requests_total" in stack.metrics_text()
