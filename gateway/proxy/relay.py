"""One moderated exchange with upstream: send the call, moderate the answer, report hits.

A route module says what to send (an ``UpstreamCall``) and how the answer is moderated
(an ``Answer``); this module does the rest. It picks the policy the request names, sends
the call, pumps a streamed answer event by event through the adapter's moderator (or
moderates a whole body at once), and reports every hit exactly once, where it comes
back from the adapter.

On every path the upstream response lives in ``async with``, so a client that goes
away, a block that ends the stream early, or an upstream that breaks all close the
upstream connection at once instead of reading it to the end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import ClientError, ClientResponse, web

from gateway.adapters.base import (
    ChannelHit,
    Hits,
    Moderated,
    ModeratedBody,
    OutEvent,
    StreamModerator,
)
from gateway.adapters.unknown import Unknown
from gateway.policy import CompiledPolicy
from gateway.policy.model import Direction
from gateway.proxy.errors import error_response
from gateway.proxy.headers import POLICY, client_response_headers
from gateway.proxy.labels import route_label
from gateway.proxy.state import (
    AUDIT,
    METRICS,
    POLICIES,
    REQUEST_ID,
    SETTINGS,
    UPSTREAM,
    UpstreamCall,
)
from gateway.sluice import SluiceConfig
from gateway.sse import SSEDecoder, SSEError, encode_comment, encode_event

log = logging.getLogger("sluicegate.proxy")


@dataclass(frozen=True, slots=True)
class Answer:
    """How to moderate what upstream answers: a whole body, or a stream if asked for."""

    moderate_body: Callable[[dict[str, Any], SluiceConfig], ModeratedBody]
    open_stream: Callable[[SluiceConfig], StreamModerator]
    stream: bool


class Exchange:
    """One request's moderated exchange: its policy, where its hits go, its upstream call.

    Built once per request (``begin``), so the input hits, the answer's hits and the
    stream's hits are all reported through the same labels and request id.
    """

    def __init__(self, request: web.Request, policy: CompiledPolicy) -> None:
        self.request = request
        self.policy = policy
        self._metrics = request.app[METRICS]
        self._audit = request.app[AUDIT]
        self._request_id = request[REQUEST_ID]

    @classmethod
    def begin(cls, request: web.Request) -> Exchange | web.Response:
        """The exchange under the policy the request names (or the default), or a 400."""
        policies = request.app[POLICIES]
        name = request.headers.get(POLICY)
        allowed = request.app[SETTINGS].selectable_policies
        policy = policies.get(name) if name is None or allowed is None or name in allowed else None
        if policy is None:
            known = ", ".join(sorted(allowed if allowed is not None else policies.policies))
            return error_response(
                400,
                f"unknown policy {name!r}; available: {known}",
                code="unknown_policy",
                param=POLICY,
            )
        return cls(request, policy)

    def report(self, hits: Hits, direction: Direction) -> None:
        """Count and audit hits, labelled with the policy; never with text."""
        for found in hits:
            hit = found.hit
            self._metrics.rule_hits.labels(
                self.policy.name, hit.rule_id, hit.action.label, direction.value
            ).inc()
            self._audit.record(
                self._request_id, self.policy.name, direction.value, found.channel, hit
            )

    async def relay(self, call: UpstreamCall, answer: Answer) -> web.StreamResponse:
        """Send ``call`` upstream and moderate the answer, streamed or whole."""
        request = self.request
        try:
            async with request.app[UPSTREAM].send(call) as resp:
                if resp.status >= 400:
                    return await self._error(resp)
                if answer.stream and resp.content_type == "text/event-stream":
                    return await _StreamRelay(
                        self, resp, answer.open_stream(self.policy.output)
                    ).run()
                return await self._whole(resp, answer)
        except (ClientError, TimeoutError) as exc:
            request.app[METRICS].upstream_errors.labels(_reason(exc)).inc()
            log.warning("upstream request failed: %s", type(exc).__name__)
            return error_response(
                502,
                "The upstream API could not be reached.",
                "upstream_error",
                "upstream_unavailable",
            )

    async def _error(self, resp: ClientResponse) -> web.Response:
        """Upstream said no: its status, and its error body moderated like any answer.

        Error messages can quote model or user text, so a JSON body is moderated whole
        (default deny); a body that is not a JSON object is replaced by the gateway's own
        error, since nothing in it could be checked.
        """
        request = self.request
        request.app[METRICS].upstream_errors.labels(f"http_{resp.status // 100}xx").inc()
        raw = await read_bounded(resp, request.app[SETTINGS].max_response_bytes)
        try:
            body = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return error_response(
                resp.status,
                f"The upstream API answered {resp.status} with a body that is not a JSON error.",
                "upstream_error",
            )
        unknown = Unknown(self.policy.output, "error")
        moderated = unknown.value(body)
        self.report(tuple(unknown.hits), Direction.OUTPUT)
        headers = client_response_headers(resp.headers, rewritten=True)
        headers["Content-Type"] = "application/json"
        return web.Response(status=resp.status, body=orjson.dumps(moderated), headers=headers)

    async def _whole(self, resp: ClientResponse, answer: Answer) -> web.Response:
        request = self.request
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
            return error_response(
                502, "The upstream response is not a JSON object.", "upstream_error"
            )
        moderated = answer.moderate_body(body, self.policy.output)
        self.report(moderated.hits, Direction.OUTPUT)
        headers = client_response_headers(resp.headers, rewritten=True)
        headers["Content-Type"] = "application/json"
        return web.Response(status=resp.status, body=orjson.dumps(moderated.body), headers=headers)


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


class _StreamRelay:
    """One moderated stream: upstream bytes -> events -> moderator -> client.

    It owns the clock: the upstream read timeout, keep-alives while text is held, the
    time to the first token and how long text waited. Everything the moderator returns
    comes back through ``_send``, which writes its events and reports its hits, so a
    later source of events (verdicts arriving for held text) only needs to join the
    ``asyncio.wait`` in ``_pump`` beside the upstream read and hand its result to ``_send``.
    """

    def __init__(self, exchange: Exchange, resp: ClientResponse, mod: StreamModerator) -> None:
        self.exchange = exchange
        self.request = exchange.request
        self.resp = resp
        self.mod = mod
        self.settings = self.request.app[SETTINGS]
        self.metrics = self.request.app[METRICS]
        self.route = route_label(self.request)
        self.started = time.monotonic()
        self.first_sent = False
        self.held_since: float | None = None
        self.last_write = 0.0
        self.out = web.StreamResponse(
            status=resp.status, headers=client_response_headers(resp.headers, rewritten=True)
        )
        self.out.content_type = "text/event-stream"
        self.out.headers["Cache-Control"] = "no-cache"
        self.out.headers["X-Accel-Buffering"] = "no"  # nginx in front must not buffer the stream

    async def run(self) -> web.StreamResponse:
        await self.out.prepare(self.request)
        self.last_write = asyncio.get_running_loop().time()
        self.metrics.active_streams.inc()
        outcome = "complete"
        try:
            try:
                await self._pump()
            except (ClientError, TimeoutError, SSEError) as exc:
                outcome = "upstream_error"
                self.metrics.upstream_errors.labels(_reason(exc)).inc()
                log.warning("upstream stream failed: %s", type(exc).__name__)
                await self._send(self.mod.on_upstream_error(_describe(exc)))
            await self.out.write_eof()
        except ConnectionResetError:
            outcome = "client_gone"  # the client left; leaving the handler closes upstream
        except asyncio.CancelledError:
            outcome = "client_gone"
            raise
        finally:
            self.metrics.active_streams.dec()
            self.metrics.stream_ends.labels(self.route, outcome).inc()
        return self.out

    async def _pump(self) -> None:
        """Read upstream until the moderator needs nothing more.

        While text is held the client may see nothing for a while (a long key, a slow
        classifier), so an SSE comment goes out whenever ``keepalive_seconds`` passed
        without a write; comments are safe for every SDK as long as no ``id:`` was sent.
        """
        loop = asyncio.get_running_loop()
        read_timeout, keepalive = self.settings.read_timeout, self.settings.keepalive_seconds
        decoder = SSEDecoder()
        deadline = loop.time() + read_timeout
        read = asyncio.ensure_future(self.resp.content.readany())
        try:
            while not self.mod.finished:
                now = loop.time()
                wait = deadline - now
                if self.mod.held and keepalive:
                    wait = min(wait, self.last_write + keepalive - now)
                done, _ = await asyncio.wait({read}, timeout=max(wait, 0))
                if not done:
                    if loop.time() >= deadline:
                        raise TimeoutError
                    await self._keepalive()
                    continue
                chunk = read.result()
                deadline = loop.time() + read_timeout
                # Everything one read brings goes out in one write.
                events: list[OutEvent] = []
                hits: list[ChannelHit] = []
                for event in decoder.feed(chunk) if chunk else decoder.close():
                    if not self.mod.finished:
                        _extend(events, hits, self.mod.on_event(event.data, event.event))
                if not chunk and not self.mod.finished:
                    _extend(events, hits, self.mod.on_eof())
                await self._send(Moderated(events, tuple(hits)))
                if not chunk:
                    return
                read = asyncio.ensure_future(self.resp.content.readany())
        finally:
            read.cancel()

    async def _send(self, moderated: Moderated) -> None:
        self.exchange.report(moderated.hits, Direction.OUTPUT)
        if moderated.events:
            await self._write(b"".join(encode_event(e.data, e.event) for e in moderated.events))
            if not self.first_sent:
                self.first_sent = True
                self.metrics.ttft.labels(self.route).observe(time.monotonic() - self.started)
        self._track_hold()

    async def _keepalive(self) -> None:
        await self._write(encode_comment("keepalive"))

    async def _write(self, frames: bytes) -> None:
        await self.out.write(frames)
        self.last_write = asyncio.get_running_loop().time()

    def _track_hold(self) -> None:
        now = time.monotonic()
        if self.mod.held and self.held_since is None:
            self.held_since = now
        elif not self.mod.held and self.held_since is not None:
            self.metrics.holdback.observe(now - self.held_since)
            self.held_since = None


def _extend(events: list[OutEvent], hits: list[ChannelHit], moderated: Moderated) -> None:
    events.extend(moderated.events)
    hits.extend(moderated.hits)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, SSEError):
        return "malformed_stream"
    return "connection"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "The upstream API stopped sending before the answer was complete."
    if isinstance(exc, SSEError):
        return "The upstream API sent a malformed event stream."
    return "The connection to the upstream API broke before the answer was complete."
