"""Sending an answer: SSE streams and JSON bodies, with pace, wire shape and faults applied.

The route modules only build events or objects; everything about *how* they leave (timing,
socket writes, injected failures, noticing that the client left) lives here, once. A stream's
fate is always recorded in ``DemoState``, whatever ends it, so tests can await it.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from gateway.demo.app_keys import CONTROLS, DEFAULT_PACE, DEMO_STATE
from gateway.demo.controls import Controls, Fault
from gateway.demo.state import StreamOutcome
from gateway.demo.wire import MALFORMED, Event, encode, keepalive, make_writer

HANG_SECONDS = 300.0
"""How long ``hang`` waits at most; any client or test times out long before."""
HANG_POLL_SECONDS = 0.02
"""aiohttp tells a handler about a lost peer only when it writes, so a silent one polls."""

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


class _Ending(enum.Enum):
    CLEAN = "clean"
    ABORT = "abort"
    HANG = "hang"


def plan(events: Sequence[Event], fault: Fault | None) -> tuple[list[Event], _Ending]:
    """The events actually sent under ``fault``, and how the stream ends after them.

    ``no-done`` drops the last event, which every route makes its terminator (``[DONE]``
    or ``response.completed``); the other stream faults strike halfway.
    """
    half = len(events) // 2
    if fault is Fault.RESET:
        return list(events[:half]), _Ending.ABORT
    if fault is Fault.HANG:
        return list(events[:half]), _Ending.HANG
    if fault is Fault.MALFORMED:
        return [*events[:half], MALFORMED, *events[half:]], _Ending.CLEAN
    if fault is Fault.NO_DONE:
        return list(events[:-1]), _Ending.CLEAN
    if fault is Fault.TRUNCATE:
        return list(events[:half]), _Ending.CLEAN
    return list(events), _Ending.CLEAN


async def send_events(request: web.Request, events: Sequence[Event]) -> web.StreamResponse:
    """Stream ``events`` as SSE and record how the stream ended."""
    controls = request[CONTROLS]
    state = request.app[DEMO_STATE]
    planned, ending = plan(events, controls.fault)
    record = state.start_stream(request.path)
    outcome = StreamOutcome.CLIENT_GONE  # what a write error or a cancellation leaves
    response = web.StreamResponse(headers=SSE_HEADERS)
    try:
        await response.prepare(request)
        writer = make_writer(response.write, controls.wire)
        pace = _pace(request, controls)
        for index, event in enumerate(planned):
            if index:
                # Even at pace 0 this yields, so an in-process reader can take each write.
                await asyncio.sleep(pace)
            if controls.wire.comments:
                await writer.send(keepalive(crlf=controls.wire.crlf))
            await writer.send(encode(event, crlf=controls.wire.crlf))
            record.events_written += 1
        await writer.flush()
        outcome = await _end(request, ending)
    except ConnectionResetError:
        pass  # the client left; ``outcome`` already says so
    finally:
        state.end_stream(record, outcome)
    return response


async def send_json(request: web.Request, payload: dict[str, Any]) -> web.StreamResponse:
    """Send a non-streamed answer; ``reset``, ``hang`` and ``malformed`` apply to it too."""
    fault = request[CONTROLS].fault
    if fault is Fault.RESET:
        _abort(request)
    elif fault is Fault.HANG:
        await _hang(request)
    body = orjson.dumps(payload)
    if fault is Fault.MALFORMED:
        body = body[: len(body) // 2]
    pace = request[CONTROLS].pace
    if pace:
        # Two writes ``pace`` apart: a proxy must read the whole body, not one read.
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        await asyncio.sleep(pace)
        await response.write(body[len(body) // 2 :])
        await response.write_eof()
        return response
    # After an abort, preparing this fails with ConnectionError, which aiohttp expects.
    return web.Response(body=body, content_type="application/json")


def _pace(request: web.Request, controls: Controls) -> float:
    return request.app[DEFAULT_PACE] if controls.pace is None else controls.pace


async def _end(request: web.Request, ending: _Ending) -> StreamOutcome:
    if ending is _Ending.ABORT:
        _abort(request)
        return StreamOutcome.ABORTED
    if ending is _Ending.HANG:
        return await _hang(request)
    return StreamOutcome.COMPLETED


async def _hang(request: web.Request) -> StreamOutcome:
    """Send nothing until the client leaves; abort at shutdown or after ``HANG_SECONDS``."""
    closing = request.app[DEMO_STATE].closing
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HANG_SECONDS
    while request.transport is not None:
        if closing.is_set() or loop.time() >= deadline:
            _abort(request)
            return StreamOutcome.ABORTED
        await asyncio.sleep(HANG_POLL_SECONDS)
    return StreamOutcome.CLIENT_GONE


def _abort(request: web.Request) -> None:
    """Drop the TCP connection without ending the body: the client sees a broken read."""
    if request.transport is not None:
        request.transport.abort()
