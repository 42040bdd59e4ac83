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
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import ClientError, ClientResponse, web

from gateway.adapters.base import (
    BodyModerator,
    ChannelHit,
    Hits,
    Moderated,
    ModeratedBody,
    OutEvent,
    StreamModerator,
)
from gateway.adapters.classified import ClassifiedStream
from gateway.adapters.unknown import Unknown
from gateway.policy import CompiledPolicy
from gateway.policy.model import Direction
from gateway.proxy.errors import error_response
from gateway.proxy.headers import POLICY, client_response_headers
from gateway.proxy.labels import route_label
from gateway.proxy.request_log import Outcome
from gateway.proxy.state import (
    AUDIT,
    JUDGES,
    METRICS,
    OFFLOAD,
    POLICIES,
    REQUEST_FACTS,
    REQUEST_ID,
    SETTINGS,
    UPSTREAM,
    UpstreamCall,
)
from gateway.proxy.verdicts import Verdicts
from gateway.sluice import Action, Reason, SluiceConfig, budget
from gateway.sluice.budget import BudgetExceeded, RequestBudget
from gateway.sluice.classify import Book, Taps
from gateway.sluice.verdicts import VerdictRequest
from gateway.sse import SSEDecoder, SSEError, encode_comment, encode_event

log = logging.getLogger("sluicegate.proxy")
#: The rule a refused request is counted under when its text could not be read at all.
UNREADABLE_RULE = "sluice.unreadable"


@dataclass(frozen=True, slots=True)
class Answer:
    """How to moderate what upstream answers: a whole body, or a stream if asked for."""

    moderate_body: BodyModerator
    open_stream: Callable[[SluiceConfig, Taps | None], StreamModerator]
    stream: bool
    #: The user's last message, for classifiers that judge an answer to something.
    prompt: str = ""


class Exchange:
    """One request's moderated exchange: its policy, where its hits go, its upstream call.

    Built once per request (``begin``), so the input hits, the answer's hits and the
    stream's hits are all reported through the same labels and request id.
    """

    def __init__(self, request: web.Request, policy: CompiledPolicy) -> None:
        self.request = request
        self.policy = policy
        self.prompt = ""
        self._metrics = request.app[METRICS]
        self._audit = request.app[AUDIT]
        self._request_id = request[REQUEST_ID]
        self.facts = request[REQUEST_FACTS]
        self.facts.policy = policy.name
        settings = request.app[SETTINGS]
        # The request's budgets, for everything moderated in it (``sluice.budget``).
        self.budget = RequestBudget(
            settings.max_stream_channels,
            settings.max_pending_entries,
            settings.scan_budget_ms / 1000,
            settings.scan_budget_ms_per_mb / 1000 / 2**20,
        )
        budget.begin(self.budget)

    @classmethod
    def begin(cls, request: web.Request) -> Exchange | web.Response:
        """The exchange under the policy the request names (or the default), or a 400."""
        policies = request.app[POLICIES]
        name = request.headers.get(POLICY)
        allowed = request.app[SETTINGS].selectable_policies
        policy = policies.get(name) if name is None or allowed is None or name in allowed else None
        if policy is None:
            known = ", ".join(sorted(allowed if allowed is not None else policies.policies))
            return error_response(  # never quotes the header: its bytes are the client's
                400,
                f"The {POLICY} header does not name a policy that can be selected; "
                f"available: {known}.",
                code="unknown_policy",
                param=POLICY,
            )
        return cls(request, policy)

    def report(self, hits: Iterable[ChannelHit], direction: Direction) -> None:
        """Count, log and audit hits, labelled with the policy; text only in the audit
        log, and only if its operator opted in."""
        for found in hits:
            hit = found.hit
            self.facts.hit(hit.rule_id, hit.action, direction)
            self._metrics.rule_hits.labels(
                self.policy.name, hit.rule_id, hit.action.label, direction.value
            ).inc()
            if hit.reason is Reason.HOLD_LIMIT:
                self._metrics.hold_overflows.labels(self.policy.name, hit.action.label).inc()
            self._audit.record(
                self._request_id, self.policy.name, direction.value, found.channel, hit
            )

    def refused(self, hits: Hits) -> None:
        """Count a request the input rules refused, under the strongest rule that fired
        (a block, or a redaction that would have renamed a member); ``hits`` is empty
        when the refusal was text no rule could read."""
        strongest = max(hits, key=lambda found: found.hit.action, default=None)
        rule = strongest.hit.rule_id if strongest is not None else UNREADABLE_RULE
        self._metrics.input_blocks.labels(self.policy.name, rule).inc()

    def over_budget(self, exc: BudgetExceeded, status: int) -> web.Response:
        """The error answer for a request a budget stopped (400 for its input, 502 for an
        answer): counted, and logged by budget name only."""
        self.count_budget()
        log.warning("request stopped by a budget: %s", exc.budget.value)
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return error_response(status, str(exc), kind, exc.code)

    def count_budget(self) -> None:
        """Count the budget that stopped this request, if one did (once per request)."""
        if self.budget.exceeded is not None:
            self._metrics.budget_exceeded.labels(self.budget.exceeded.value).inc()

    def verdicts(self, *, user: bool = False) -> Verdicts:
        """Runs this request's classifier calls (``user``: judging the prompt itself)."""
        request = self.request
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return Verdicts(
            request.app[JUDGES],
            self.policy,
            prompt="" if user else self.prompt,
            api_key=token.strip() or None if scheme.lower() == "bearer" else None,
            role="user" if user else "assistant",
            per_stream=request.app[SETTINGS].classifier_concurrency_per_stream,
        )

    def book(self) -> Book | None:
        """The classifier lane's book for the answer, if the policy has such rules."""
        output = self.policy.output
        return Book(output.classifiers, output.fail_closed) if output.classifiers else None

    async def relay(
        self,
        call: UpstreamCall,
        answer: Answer,
        first: asyncio.Future[web.Response | None] | None = None,
    ) -> web.StreamResponse:
        """Send ``call`` upstream and moderate the answer, streamed or whole.

        ``first`` is a check that runs beside the upstream call (input classifier
        rules): nothing goes to the client until it is done, and a response it returns
        (the 400 of a blocked prompt) is sent instead, cancelling the upstream call.
        """
        request = self.request
        try:
            async with contextlib.AsyncExitStack() as stack:
                sent = time.monotonic()
                resp = await self._send(stack, call, first)
                if isinstance(resp, web.Response):
                    return resp
                if resp.status >= 400:
                    return await self._error(resp)
                if answer.stream and resp.content_type == "text/event-stream":
                    return await _StreamRelay(self, resp, self._open(answer), sent).run()
                # A whole body follows its headers, so they mark its first byte.
                upstream_ttfb = self._metrics.upstream_ttfb.labels(route_label(request))
                upstream_ttfb.observe(time.monotonic() - sent)
                self.facts.upstream_answered(sent)
                return await self._whole(resp, answer)
        except BudgetExceeded as exc:  # a whole body (a stream ends in its moderator)
            return self.over_budget(exc, 502)
        except (ClientError, TimeoutError) as exc:
            self.facts.ended(Outcome.UPSTREAM_ERROR)
            request.app[METRICS].upstream_errors.labels(_reason(exc)).inc()
            log.warning("upstream request failed: %s", type(exc).__name__)
            return error_response(
                502,
                "The upstream API could not be reached.",
                "upstream_error",
                "upstream_unavailable",
            )

    async def _send(
        self,
        stack: contextlib.AsyncExitStack,
        call: UpstreamCall,
        first: asyncio.Future[web.Response | None] | None,
    ) -> ClientResponse | web.Response:
        """The upstream response, unless ``first`` answers the client instead."""
        sending = asyncio.ensure_future(
            stack.enter_async_context(self.request.app[UPSTREAM].send(call))
        )
        if first is None:
            return await sending
        try:
            racing: set[asyncio.Future[Any]] = {sending, first}
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
            blocked = first.result() if first.done() else None
            if blocked is not None:
                return blocked  # the upstream call is cancelled below
            resp = await sending  # the check is still running, or it passed
            answer = await first
            return resp if answer is None else answer
        finally:
            for task in (first, sending):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task  # its upstream connection closes before we go on
                elif not task.cancelled():
                    task.exception()  # retrieved, so a failure that lost is not reported

    def _open(self, answer: Answer) -> StreamModerator:
        output = self.policy.output
        book = self.book()
        if book is None:
            return answer.open_stream(output, None)
        return ClassifiedStream(lambda taps: answer.open_stream(output, taps), book)

    async def _error(self, resp: ClientResponse) -> web.Response:
        """Upstream said no: its status, and its error body moderated like any answer.

        Error messages can quote model or user text, so a JSON body is moderated whole
        (default deny); a body that is not a JSON object is replaced by the gateway's own
        error, since nothing in it could be checked.
        """
        request = self.request
        self.facts.ended(Outcome.UPSTREAM_ERROR)
        request.app[METRICS].upstream_errors.labels(f"http_{resp.status // 100}xx").inc()
        raw = await read_bounded(resp, request.app[SETTINGS].max_response_bytes)
        try:
            body = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict) or _too_deep(body):
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
        self.budget.earn(len(raw))
        offload = request.app[OFFLOAD]  # a big body is parsed and moderated off the loop
        try:
            body = await offload.run(len(raw), orjson.loads, raw)
        except orjson.JSONDecodeError:
            request.app[METRICS].upstream_errors.labels("malformed_body").inc()
            return error_response(502, "The upstream response is not valid JSON.", "upstream_error")
        if not isinstance(body, dict):
            return error_response(
                502, "The upstream response is not a JSON object.", "upstream_error"
            )
        if await offload.run(len(raw), _too_deep, body):  # a serialisation: big bodies off the loop
            return error_response(
                502, "The upstream response is nested too deeply.", "upstream_error"
            )
        moderated = await self._judged(raw, body, answer)
        self.report(moderated.hits, Direction.OUTPUT)
        headers = client_response_headers(resp.headers, rewritten=True)
        headers["Content-Type"] = "application/json"
        out = await offload.run(len(raw), orjson.dumps, moderated.body)
        return web.Response(status=resp.status, body=out, headers=headers)

    async def _judged(self, raw: bytes, body: dict[str, Any], answer: Answer) -> ModeratedBody:
        """A whole body: with classifier rules, judged in a first pass over a copy (its
        segments), then moderated with every verdict in; else moderated at once."""
        output = self.policy.output
        book = self.book()
        run = self.request.app[OFFLOAD].run
        if book is None:
            return await run(len(raw), answer.moderate_body, body, output)
        await run(len(raw), lambda: answer.moderate_body(orjson.loads(raw), output, book.shadow()))
        verdicts = self.verdicts()
        for request_id, verdict in await verdicts.all(book.take_requests()):
            book.verdict(request_id, verdict)
        return await run(len(raw), answer.moderate_body, body, output, book.gate())


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

    def __init__(
        self,
        exchange: Exchange,
        resp: ClientResponse,
        mod: StreamModerator,
        sent: float,
    ) -> None:
        self.exchange = exchange
        self.request = exchange.request
        self.resp = resp
        self.mod = mod
        self.settings = self.request.app[SETTINGS]
        self.metrics = metrics = self.request.app[METRICS]
        self.route = route = route_label(self.request)
        policy = exchange.policy.name
        # Label children looked up once per stream: each chunk only observes.
        self.ttft = metrics.ttft.labels(route)
        self.upstream_ttfb = metrics.upstream_ttfb.labels(route)
        self.added_latency = metrics.added_latency.labels(route)
        self.held_chars = metrics.held_chars.labels(policy)
        # From the request's arrival, as the client waits (and as its log line says).
        self.started = exchange.facts.started
        #: When the request went upstream, until its first bytes arrive.
        self.sent: float | None = sent
        self.first_sent = False
        self.cut = False
        self.held_since: float | None = None
        self.held_peak = 0
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
                self.exchange.facts.ended(Outcome.UPSTREAM_ERROR)
                self.metrics.upstream_errors.labels(_reason(exc)).inc()
                log.warning("upstream stream failed: %s", type(exc).__name__)
                await self._send(self.mod.on_upstream_error(_describe(exc)))
            await self.out.write_eof()
        except ConnectionResetError:
            outcome = "client_gone"  # the client left; leaving the handler closes upstream
            self.exchange.facts.ended(Outcome.CLIENT_DISCONNECT)
            self.metrics.client_disconnects.labels(self.route).inc()
        except asyncio.CancelledError:
            outcome = "client_gone"
            raise
        finally:
            if self.exchange.budget.exceeded is not None:
                outcome = "budget_exceeded"  # its moderator ended the stream with the error
                log.warning("stream stopped by a budget: %s", self.exchange.budget.exceeded.value)
                self.exchange.count_budget()
            self.metrics.active_streams.dec()
            self.metrics.stream_ends.labels(self.route, outcome).inc()
        return self.out

    async def _pump(self) -> None:
        """Read upstream, and take verdicts, until the moderator needs nothing more.

        While text is held the client may see nothing for a while (a long key, a slow
        classifier), so an SSE comment goes out whenever ``keepalive_seconds`` passed
        without a write; comments are safe for every SDK as long as no ``id:`` was sent.
        With classifier rules, reading pauses while too much waits for verdicts, so a
        slow classifier bounds memory instead of buffering a whole answer.
        """
        loop = asyncio.get_running_loop()
        mod, settings = self.mod, self.settings
        classified = mod if isinstance(mod, ClassifiedStream) else None
        verdicts = self.exchange.verdicts() if classified is not None else None
        read_timeout, keepalive = settings.read_timeout, settings.keepalive_seconds
        decoder = SSEDecoder()
        deadline = loop.time() + read_timeout
        read: asyncio.Future[bytes] | None = asyncio.ensure_future(self.resp.content.readany())
        stall: tuple[int, float] | None = None  # (classified.fed, since) while stalled
        try:
            while not mod.finished:
                now = loop.time()
                waits: set[asyncio.Future[Any]] = set(verdicts.tasks) if verdicts else set()
                wait = deadline - now if read is not None else keepalive or read_timeout
                if read is not None:
                    waits.add(read)
                if mod.held and keepalive:
                    wait = min(wait, self.last_write + keepalive - now)
                if classified is not None and classified.stalled:
                    if stall is None or stall[0] != classified.fed:
                        stall = (classified.fed, now)
                    if read is None or now - stall[1] >= STALL_SECONDS:
                        stall = None
                        if not await self._unstall(classified, verdicts):
                            return
                        continue
                    wait = min(wait, stall[1] + STALL_SECONDS - now)
                else:
                    stall = None
                if not waits:
                    # Nothing is due that could move the stream on: end it as failed.
                    await self._send(mod.on_upstream_error(_STUCK))
                    return
                done, _ = await asyncio.wait(
                    waits, timeout=max(wait, 0), return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    if read is not None and loop.time() >= deadline:
                        raise TimeoutError
                    if mod.held and keepalive and loop.time() >= self.last_write + keepalive:
                        await self._keepalive()
                    continue
                batch = _Batch()
                for task in done:
                    if task is read:
                        batch.arrived = time.perf_counter()
                        if self.sent is not None:
                            self.upstream_ttfb.observe(time.monotonic() - self.sent)
                            self.exchange.facts.upstream_answered(self.sent)
                            self.sent = None
                        chunk = read.result()
                        self.exchange.budget.earn(len(chunk))
                        deadline = loop.time() + read_timeout
                        read = None
                        # Everything one read brings goes out in one write.
                        for event in decoder.feed(chunk) if chunk else decoder.close():
                            if not mod.finished:
                                batch.add(mod.on_event(event.data, event.event))
                        if not chunk and not mod.finished:
                            batch.add(mod.on_eof())
                        if not chunk and classified is None:
                            await self._send(batch)
                            return
                    elif verdicts is not None and classified is not None:
                        batch.add(classified.on_verdict(*verdicts.take(task)))  # type: ignore[arg-type]
                if verdicts is not None:
                    verdicts.start(batch.requests)
                    verdicts.cancel(batch.cancelled)
                await self._send(batch)
                if (
                    read is None
                    and not self._upstream_done(classified)
                    and (classified is None or classified.backlog <= settings.classifier_backlog)
                ):
                    read = asyncio.ensure_future(self.resp.content.readany())
                    deadline = loop.time() + read_timeout
        finally:
            if read is not None:
                read.cancel()
            if verdicts is not None:
                verdicts.close()  # a client that left, or a cut, cancels what is pending

    async def _unstall(self, classified: ClassifiedStream, verdicts: Verdicts | None) -> bool:
        """Judge the open segments the next event waits on; ``False`` if nothing could be
        asked (the stream is then ended as failed: what waits was never judged)."""
        batch = _Batch()
        batch.add(classified.unstall())
        if verdicts is not None:
            verdicts.start(batch.requests)
            verdicts.cancel(batch.cancelled)
        await self._send(batch)
        if classified.finished or not classified.stalled:
            return True
        await self._send(classified.on_upstream_error(_STUCK))
        return False

    def _upstream_done(self, classified: ClassifiedStream | None) -> bool:
        if self.mod.finished:
            return True
        return classified is not None and classified.upstream_done

    async def _send(self, moderated: Moderated | _Batch) -> None:
        self.exchange.report(moderated.hits, Direction.OUTPUT)
        if moderated.hits and not self.cut:
            self._count_cut(moderated.hits)
        for rule_id, chars in moderated.leaked:
            self.metrics.classifier_leaked.labels(self.exchange.policy.name, rule_id).observe(chars)
        if moderated.events:
            await self._write(b"".join(encode_event(e.data, e.event) for e in moderated.events))
            if isinstance(moderated, _Batch) and moderated.arrived is not None:
                self.added_latency.observe(time.perf_counter() - moderated.arrived)
            if not self.first_sent:
                self.first_sent = True
                self.ttft.observe(time.monotonic() - self.started)
                self.exchange.facts.first_token()
        self._track_hold()

    def _count_cut(self, hits: Iterable[ChannelHit]) -> None:
        """The first block ends the stream's text (or one choice of it): counted once."""
        for found in hits:
            if found.hit.action is Action.BLOCK:
                self.cut = True
                self.metrics.stream_cutoffs.labels(
                    self.exchange.policy.name, found.hit.rule_id
                ).inc()
                return

    async def _keepalive(self) -> None:
        await self._write(encode_comment("keepalive"))

    async def _write(self, frames: bytes) -> None:
        await self.out.write(frames)
        self.exchange.facts.wrote(len(frames))
        self.last_write = asyncio.get_running_loop().time()

    def _track_hold(self) -> None:
        held = self.mod.held
        if held:
            if self.held_since is None:
                self.held_since = time.monotonic()
            self.held_peak = max(self.held_peak, held)
        elif self.held_since is not None:
            self.metrics.holdback.observe(time.monotonic() - self.held_since)
            self.held_chars.observe(self.held_peak)
            self.held_since, self.held_peak = None, 0


#: How long text may wait for a sentence that stopped growing (its channel went quiet
#: while others stream, or upstream paused) before it is judged as it stands.
STALL_SECONDS = 0.5
_STUCK = "The answer could not be checked completely."


class _Batch:
    """What several moderator calls returned, sent and reported as one."""

    __slots__ = ("arrived", "cancelled", "events", "hits", "leaked", "requests")

    def __init__(self) -> None:
        #: ``perf_counter`` when the upstream read in this batch arrived, if one did.
        self.arrived: float | None = None
        self.events: list[OutEvent] = []
        self.hits: list[ChannelHit] = []
        self.requests: list[VerdictRequest] = []
        self.cancelled: list[int] = []
        self.leaked: list[tuple[str, int]] = []

    def add(self, moderated: Moderated) -> None:
        self.events.extend(moderated.events)
        self.hits.extend(moderated.hits)
        self.requests.extend(moderated.requests)
        self.cancelled.extend(moderated.cancelled)
        self.leaked.extend(moderated.leaked)


def _too_deep(body: dict[str, Any]) -> bool:
    """Nested deeper than orjson writes (255 levels, though it reads 1024): such a body can
    be neither moderated (the walkers recurse) nor written back, so it is refused whole."""
    try:
        orjson.dumps(body)
    except orjson.JSONEncodeError:
        return True
    return False


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
