"""Server-sent events as bytes on the socket, framed and cut the way a test asks.

A proxy's SSE reader must not care how the bytes arrive: one event per read, many events per
read, or reads that end inside a UTF-8 character or between CR and LF (docs/wire.md, "Headers,
compression and reads"). The writers here produce each of those on purpose, from the same
encoded events, so a test can check that the payload bytes and what the client decodes stay
identical.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

from gateway.demo.controls import Wire, WriteMode

MAX_BYTE_PIECE = 12
"""The longest random piece in ``bytes`` mode; short, so most events are cut several times."""

Write = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Event:
    """One SSE event; ``event`` is the optional ``event:`` line (Responses API only)."""

    data: str
    event: str | None = None


DONE = Event("[DONE]")
MALFORMED = Event("{not json")


def encode(event: Event, *, crlf: bool) -> bytes:
    eol = "\r\n" if crlf else "\n"
    name = f"event: {event.event}{eol}" if event.event is not None else ""
    return f"{name}data: {event.data}{eol}{eol}".encode()


def keepalive(*, crlf: bool) -> bytes:
    """A comment block: ignored by every SDK, as long as no ``id:`` was ever sent."""
    return b": ping\r\n\r\n" if crlf else b": ping\n\n"


class Writer(Protocol):
    """Takes encoded frames; ``flush`` pushes out anything held back."""

    async def send(self, frame: bytes) -> None: ...

    async def flush(self) -> None: ...


def make_writer(write: Write, wire: Wire) -> Writer:
    if wire.write is WriteMode.COALESCE:
        return CoalescingWriter(write)
    if wire.write is WriteMode.BYTES:
        return CuttingWriter(write, random.Random(wire.seed))
    return EventWriter(write)


class EventWriter:
    """One write per frame."""

    def __init__(self, write: Write) -> None:
        self._write = write

    async def send(self, frame: bytes) -> None:
        await self._write(frame)

    async def flush(self) -> None:
        return None


class CoalescingWriter:
    """Everything in one write at ``flush``, so a reader gets many events per read."""

    def __init__(self, write: Write) -> None:
        self._write = write
        self._held: list[bytes] = []

    async def send(self, frame: bytes) -> None:
        self._held.append(frame)

    async def flush(self) -> None:
        if self._held:
            data, self._held = b"".join(self._held), []
            await self._write(data)


class CuttingWriter:
    """The byte stream cut at random points, across event boundaries too.

    Besides the random cuts, every multi-byte UTF-8 character is split and every CRLF is
    separated, so those cases are certain rather than likely. Each piece but the last of a
    frame goes out at once; the last waits to be joined with the next frame's start.
    """

    def __init__(self, write: Write, rng: random.Random) -> None:
        self._write = write
        self._rng = rng
        self._carry = b""

    async def send(self, frame: bytes) -> None:
        *ready, self._carry = cut(self._carry + frame, self._rng)
        for piece in ready:
            await self._write(piece)
            # Let an in-process reader (tests, benchmarks) see each piece as its own read.
            await asyncio.sleep(0)

    async def flush(self) -> None:
        if self._carry:
            data, self._carry = self._carry, b""
            await self._write(data)


def cut(data: bytes, rng: random.Random) -> list[bytes]:
    """Split ``data`` into non-empty pieces at random points and at every hard case."""
    cuts: set[int] = set()
    position = rng.randint(1, MAX_BYTE_PIECE)
    while position < len(data):
        cuts.add(position)
        position += rng.randint(1, MAX_BYTE_PIECE)
    cuts.update(
        index
        for index in range(1, len(data))
        if data[index] & 0xC0 == 0x80 or data[index - 1 : index + 1] == b"\r\n"
    )
    bounds = [0, *sorted(cuts), len(data)]
    return [data[start:end] for start, end in pairwise(bounds) if start < end]
