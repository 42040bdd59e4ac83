"""The moderated routes: input rules, forwarding, and the streamed or whole answer.

The handler owns the sockets and the clock; everything about OpenAI shapes is the
adapter's. On every path the upstream response lives in ``async with``, so a client
that goes away, a block that ends the stream early, or an upstream that breaks all
close the upstream connection at once instead of reading it to the end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import ClientError, ClientResponse, web

from gateway.adapters.base import ApiAdapter, HitLog, OutEvent, StreamModerator
from gateway.adapters.inputs import moderate_request
from gateway.policy import CompiledPolicy
from gateway.policy.model import Direction
from gateway.proxy.errors import error_response
from gateway.proxy.headers import POLICY, client_response_headers, upstream_request_headers
from gateway.proxy.labels import route_label
from gateway.proxy.state import AUDIT, METRICS, POLICIES, REQUEST_ID, SETTINGS, UPSTREAM
from gateway.sluice import SluiceConfig
from gateway.sse import SSEDecoder, SSEError, encode_comment, encode_event

log = logging.getLogger("sluicegate.proxy")
Moderate = Callable[[dict[str, Any], SluiceConfig, HitLog], dict[str, Any]]


class Reporter:
    """Sends an adapter's hits to metrics and the audit log, labelled with the policy."""

    def __init__(self, request: web.Request, policy: CompiledPolicy) -> None:
        self._metrics = request.app[METRICS]
        self._audit = request.app[AUDIT]
        self._request_id: str = request[REQUEST_ID]
        self._policy = policy.name

    def report(self, hits: HitLog, direction: Direction) -> None:
        for channel, hit in hits.drain():
            self._metrics.rule_hits.labels(
                self._policy, hit.rule_id, hit.action.label, direction.value
            ).inc()
            self._audit.record(self._request_id, self._policy, direction.value, channel, hit)


def route_handler(adapter: ApiAdapter) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await _handle(request, adapter)

    return handle


def select_policy(request: web.Request) -> CompiledPolicy | web.Response:
    """The policy the request names (or the default), or the 400 to answer with."""
    policies = request.app[POLICIES]
    name = request.headers.get(POLICY)
    allowed = request.app[SETTINGS].selectable_policies
    policy = policies.get(name) if name is None or allowed is None or name in allowed else None
    if policy is None:
        known = ", ".join(sorted(allowed if allowed is not None else policies.policies))
        return error_response(
            400, f"unknown policy {name!r}; available: {known}", code="unknown_policy", param=POLICY
        )
    return policy


async def _handle(request: web.Request, adapter: ApiAdapter) -> web.StreamResponse:
    policy = select_policy(request)
    if isinstance(policy, web.Response):
        return policy
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        return error_response(400, f"the request body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return error_response(400, "the request body must be a JSON object")
    reporter = Reporter(request, policy)
    hits = HitLog()
    verdict = moderate_request(adapter, body, policy.input, hits)
    reporter.report(hits, Direction.INPUT)
    if verdict.blocked is not None:
        return error_response(
            400,
            "The request was rejected by the content policy.",
            code="content_policy_violation",
            param=verdict.blocked.param,
        )
    headers = upstream_request_headers(request.headers, upstream_key(request))
    headers["Content-Type"] = "application/json"
    stream = body.get("stream") is True
    call = {"method": "POST", "data": orjson.dumps(verdict.body), "headers": headers}
    return await relay(request, call, adapter.moderate_response, adapter, body, policy, stream)


async def relay(
    request: web.Request,
    call: dict[str, Any],
    moderate: Moderate,
    adapter: ApiAdapter,
    body: dict[str, Any],
    policy: CompiledPolicy,
    stream: bool,
) -> web.StreamResponse:
    """Send ``call`` upstream and moderate the answer, streamed or whole."""
    upstream = request.app[UPSTREAM]
    reporter = Reporter(request, policy)
    try:
        async with upstream.session.request(url=upstream.url(request.path), **call) as resp:
            if resp.status >= 400:
                return await _relay_error(request, resp)
            if stream and resp.content_type == "text/event-stream":
                return await _stream(request, resp, adapter.stream(body, policy.output), reporter)
            return await _whole(request, resp, moderate, policy, reporter)
    except (ClientError, TimeoutError) as exc:
        request.app[METRICS].upstream_errors.labels(_reason(exc)).inc()
        log.warning("upstream request failed: %s", type(exc).__name__)
        return error_response(
            502, "The upstream API could not be reached.", "upstream_error", "upstream_unavailable"
        )


def upstream_key(request: web.Request) -> str | None:
    key = request.app[SETTINGS].upstream_api_key
    return key.get_secret_value() if key is not None else None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, SSEError):
        return "malformed_stream"
    return "connection"


async def read_bounded(resp: ClientResponse, limit: int) -> bytes | None:
    """The whole body, or ``None`` past ``limit`` bytes (``read(n)`` returns one read)."""
    if resp.content_length is not None and resp.content_length > limit:
        return None
    body = bytearray()
    async for chunk in resp.content.iter_any():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def _relay_error(request: web.Request, resp: ClientResponse) -> web.Response:
    """Upstream said no: pass its status and error body back as they are."""
    request.app[METRICS].upstream_errors.labels(f"http_{resp.status // 100}xx").inc()
    body = await read_bounded(resp, request.app[SETTINGS].max_response_bytes)
    if body is None:
        return error_response(
            resp.status, "The upstream error body is too large.", "upstream_error"
        )
    return web.Response(
        status=resp.status, body=body, headers=client_response_headers(resp.headers, rewritten=True)
    )


async def _whole(
    request: web.Request,
    resp: ClientResponse,
    moderate: Moderate,
    policy: CompiledPolicy,
    reporter: Reporter,
) -> web.Response:
    raw = await read_bounded(resp, request.app[SETTINGS].max_response_bytes)
    if raw is None:
        return error_response(
            502, "The upstream response is too large to moderate.", "upstream_error"
        )
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        request.app[METRICS].upstream_errors.labels("malformed_body").inc()
        return error_response(502, "The upstream response is not valid JSON.", "upstream_error")
    if not isinstance(body, dict):
        return error_response(502, "The upstream response is not a JSON object.", "upstream_error")
    hits = HitLog()
    moderated = moderate(body, policy.output, hits)
    reporter.report(hits, Direction.OUTPUT)
    headers = client_response_headers(resp.headers, rewritten=True)
    headers["Content-Type"] = "application/json"
    return web.Response(status=resp.status, body=orjson.dumps(moderated), headers=headers)


class _Relay:
    """One moderated stream's bookkeeping: writes, first-token time and hold time."""

    def __init__(self, request: web.Request, out: web.StreamResponse, mod: StreamModerator) -> None:
        self.request, self.out, self.mod = request, out, mod
        self.metrics = request.app[METRICS]
        self.started = time.monotonic()
        self.first_sent = False
        self.held_since: float | None = None
        self.last_write = asyncio.get_running_loop().time()

    async def keepalive(self) -> None:
        await self.out.write(encode_comment("keepalive"))
        self.last_write = asyncio.get_running_loop().time()

    async def send(self, events: list[OutEvent]) -> None:
        if events:
            frames = b"".join(encode_event(e.data, e.event) for e in events)
            await self.out.write(frames)
            self.last_write = asyncio.get_running_loop().time()
            if not self.first_sent:
                self.first_sent = True
                elapsed = time.monotonic() - self.started
                self.metrics.ttft.labels(route_label(self.request)).observe(elapsed)
        self._track_hold()

    def _track_hold(self) -> None:
        now = time.monotonic()
        if self.mod.held and self.held_since is None:
            self.held_since = now
        elif not self.mod.held and self.held_since is not None:
            self.metrics.holdback.observe(now - self.held_since)
            self.held_since = None


async def _stream(
    request: web.Request, resp: ClientResponse, mod: StreamModerator, reporter: Reporter
) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    out = web.StreamResponse(
        status=resp.status, headers=client_response_headers(resp.headers, rewritten=True)
    )
    out.content_type = "text/event-stream"
    out.headers["Cache-Control"] = "no-cache"
    out.headers["X-Accel-Buffering"] = "no"  # nginx in front must not buffer the stream
    await out.prepare(request)
    relay = _Relay(request, out, mod)
    metrics = relay.metrics
    metrics.active_streams.inc()
    outcome = "complete"
    try:
        try:
            await _pump(
                resp, mod, relay, reporter, settings.read_timeout, settings.keepalive_seconds
            )
        except (ClientError, TimeoutError, SSEError) as exc:
            outcome = "upstream_error"
            metrics.upstream_errors.labels(_reason(exc)).inc()
            log.warning("upstream stream failed: %s", type(exc).__name__)
            await relay.send(mod.on_upstream_error(_describe(exc)))
        await out.write_eof()
    except ConnectionResetError:
        outcome = "client_gone"  # the client left; leaving the handler closes upstream
    except asyncio.CancelledError:
        outcome = "client_gone"
        raise
    finally:
        metrics.active_streams.dec()
        metrics.stream_ends.labels(route_label(request), outcome).inc()
        reporter.report(mod.log, Direction.OUTPUT)
    return out


async def _pump(
    resp: ClientResponse,
    mod: StreamModerator,
    relay: _Relay,
    reporter: Reporter,
    read_timeout: float,
    keepalive: float,
) -> None:
    """Upstream bytes -> events -> moderator -> client, until nothing more is needed.

    While text is held the client may see nothing for a while (a long key, a slow
    classifier), so an SSE comment goes out whenever ``keepalive`` seconds passed
    without a write; comments are safe for every SDK as long as no ``id:`` was sent.
    """
    loop = asyncio.get_running_loop()
    decoder = SSEDecoder()
    deadline = loop.time() + read_timeout
    read = asyncio.ensure_future(resp.content.readany())
    try:
        while not mod.finished:
            now = loop.time()
            wait = deadline - now
            if mod.held and keepalive:
                wait = min(wait, relay.last_write + keepalive - now)
            done, _ = await asyncio.wait({read}, timeout=max(wait, 0))
            if not done:
                if loop.time() >= deadline:
                    raise TimeoutError
                await relay.keepalive()
                continue
            chunk = read.result()
            deadline = loop.time() + read_timeout
            events = decoder.feed(chunk) if chunk else decoder.close()
            out = [o for e in events for o in _feed(mod, e.data, e.event)]
            if not chunk and not mod.finished:
                out += mod.on_eof()
            reporter.report(mod.log, Direction.OUTPUT)
            await relay.send(out)
            if not chunk:
                return
            read = asyncio.ensure_future(resp.content.readany())
    finally:
        read.cancel()


def _feed(mod: StreamModerator, data: str, event: str | None) -> list[OutEvent]:
    return [] if mod.finished else mod.on_event(data, event)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "The upstream API stopped sending before the answer was complete."
    if isinstance(exc, SSEError):
        return "The upstream API sent a malformed event stream."
    return "The connection to the upstream API broke before the answer was complete."
