"""Per-request test controls, read from ``X-Demo-*`` request headers.

Headers, not body fields, because a gateway forwards unknown headers unchanged while it may
rewrite the body; tests set them with the SDK's ``extra_headers``. A malformed control is a
400 naming the header, so a typo in a test fails loudly instead of testing the default.

``X-Demo-Reply``
    JSON: a string (the content of every choice), an object ``{"content", "refusal",
    "tool_calls": [{"name", "arguments"}]}`` (``arguments`` is JSON text), or a list of
    either with one entry per choice. Header values are ASCII: send non-ASCII text escaped
    as ``\\uXXXX``, which ``json.dumps`` does by default.
``X-Demo-Chunking``
    ``word`` (default), ``char``, ``random:<seed>`` (1–8 characters a piece) or ``all``.
``X-Demo-Wire``
    Comma-separated: one write mode, ``event`` (default: one write per event), ``coalesce``
    (the whole stream in one write) or ``bytes:<seed>`` (cut at random points, inside every
    multi-byte character and between every CR and LF); and optionally ``crlf`` (CRLF line
    ends), e.g. ``crlf,bytes:7``.
``X-Demo-Comments``
    ``1``: a ``: ping`` comment before every event.
``X-Demo-Pace-Ms``
    Milliseconds between events, overriding the app's default pace.
``X-Demo-Repeat``
    ``N`` (1–10,000): every choice's content N times over, so a benchmark gets a 100 KB
    answer from a header that must stay under the servers' 8 KiB header limit.
``X-Demo-Fault``
    ``reset``, ``malformed``, ``no-done``, ``truncate``, ``http-500``, ``http-429``, ``hang``
    (see ``Fault``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import orjson

from gateway.demo.chunking import Chunking, ChunkingMode
from gateway.demo.errors import DemoError
from gateway.demo.reply import Reply, ReplySpec, parse_reply_spec, replies_for

REPLY_HEADER = "X-Demo-Reply"
CHUNKING_HEADER = "X-Demo-Chunking"
WIRE_HEADER = "X-Demo-Wire"
COMMENTS_HEADER = "X-Demo-Comments"
PACE_HEADER = "X-Demo-Pace-Ms"
REPEAT_HEADER = "X-Demo-Repeat"
MAX_REPEAT = 10_000
FAULT_HEADER = "X-Demo-Fault"


class WriteMode(enum.Enum):
    EVENT = "event"
    COALESCE = "coalesce"
    BYTES = "bytes"


@dataclass(frozen=True, slots=True)
class Wire:
    """How encoded events reach the socket; ``seed`` matters only for ``BYTES``."""

    write: WriteMode = WriteMode.EVENT
    seed: int = 0
    crlf: bool = False
    comments: bool = False


class Fault(enum.Enum):
    """A failure to inject; streams apply it halfway through their events."""

    RESET = "reset"
    """Abort the TCP connection: the client sees a broken chunked body."""
    MALFORMED = "malformed"
    """Send ``data: {not json`` (or a truncated JSON body), then carry on."""
    NO_DONE = "no-done"
    """End cleanly but leave out ``[DONE]`` / ``response.completed``."""
    TRUNCATE = "truncate"
    """End cleanly halfway: no finish reason, no terminator (a proxy that gave up)."""
    HTTP_500 = "http-500"
    """Answer 500 with an OpenAI error body instead."""
    HTTP_429 = "http-429"
    """Answer 429 with ``retry-after: 0`` instead."""
    HANG = "hang"
    """Stop sending and wait until the client gives up."""


@dataclass(frozen=True, slots=True)
class Controls:
    reply: ReplySpec | None = None
    chunking: Chunking = field(default_factory=Chunking)
    wire: Wire = field(default_factory=Wire)
    pace: float | None = None
    fault: Fault | None = None
    repeat: int = 1

    def replies(self, n: int, default: Reply) -> tuple[Reply, ...]:
        """The reply of each of ``n`` choices: the header's, else ``default`` for all."""
        if self.reply is None:
            return self._repeated((default,) * n)
        try:
            return self._repeated(replies_for(self.reply, n))
        except ValueError as exc:
            raise _invalid(REPLY_HEADER, str(exc)) from None

    def _repeated(self, replies: tuple[Reply, ...]) -> tuple[Reply, ...]:
        if self.repeat == 1:
            return replies
        return tuple(
            replace(r, content=r.content * self.repeat) if r.content else r for r in replies
        )


def read_controls(headers: Mapping[str, str]) -> Controls:
    """Parse every ``X-Demo-*`` header; raises a 400 ``DemoError`` naming a bad one."""
    return Controls(
        reply=_reply(headers.get(REPLY_HEADER)),
        chunking=_chunking(headers.get(CHUNKING_HEADER, "word")),
        wire=_wire(
            headers.get(WIRE_HEADER, "event"),
            comments=_flag(COMMENTS_HEADER, headers.get(COMMENTS_HEADER, "0")),
        ),
        pace=_pace(headers.get(PACE_HEADER)),
        fault=_fault(headers.get(FAULT_HEADER)),
        repeat=_repeat(headers.get(REPEAT_HEADER, "1")),
    )


def _repeat(raw: str) -> int:
    count = int(raw) if raw.strip().isdigit() else 0
    if not 1 <= count <= MAX_REPEAT:
        raise _invalid(REPEAT_HEADER, f"must be a whole number from 1 to {MAX_REPEAT:,}")
    return count


def _reply(raw: str | None) -> ReplySpec | None:
    if raw is None:
        return None
    try:
        return parse_reply_spec(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise _invalid(REPLY_HEADER, str(exc)) from None


def _chunking(raw: str) -> Chunking:
    name, _, seed = raw.strip().partition(":")
    try:
        mode = ChunkingMode(name)
    except ValueError:
        raise _invalid(CHUNKING_HEADER, f"unknown chunking {name!r}") from None
    if mode is ChunkingMode.RANDOM:
        return Chunking(mode, _seed(CHUNKING_HEADER, seed))
    if seed:
        raise _invalid(CHUNKING_HEADER, f"{name!r} takes no seed")
    return Chunking(mode)


def _wire(raw: str, *, comments: bool) -> Wire:
    write, seed, crlf = WriteMode.EVENT, 0, False
    for option in filter(None, (part.strip() for part in raw.split(","))):
        name, _, arg = option.partition(":")
        if option == "crlf":
            crlf = True
        elif name == WriteMode.BYTES.value:
            write, seed = WriteMode.BYTES, _seed(WIRE_HEADER, arg)
        elif option in (WriteMode.EVENT.value, WriteMode.COALESCE.value):
            write = WriteMode(option)
        else:
            raise _invalid(WIRE_HEADER, f"unknown wire option {option!r}")
    return Wire(write=write, seed=seed, crlf=crlf, comments=comments)


def _flag(header: str, raw: str) -> bool:
    if raw not in ("0", "1"):
        raise _invalid(header, "must be 0 or 1")
    return raw == "1"


def _pace(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        millis = float(raw)
    except ValueError:
        millis = -1.0
    if not 0 <= millis < float("inf"):
        raise _invalid(PACE_HEADER, "must be a non-negative number of milliseconds")
    return millis / 1000


def _fault(raw: str | None) -> Fault | None:
    if raw is None:
        return None
    try:
        return Fault(raw.strip())
    except ValueError:
        raise _invalid(FAULT_HEADER, f"unknown fault {raw!r}") from None


def _seed(header: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise _invalid(header, f"needs an integer seed, got {raw!r}") from None


def _invalid(header: str, problem: str) -> DemoError:
    return DemoError(400, f"{header}: {problem}", param=header, code="invalid_demo_control")
