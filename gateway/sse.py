"""Incremental Server-Sent Events codec: bytes in, events out, and back.

This is the only module that reads or writes SSE framing, so that every
framing rule (line ends, the optional space, when an event is dispatched) is
decided once. It is sans-I/O in the style of h11: the caller owns the socket
and hands us whatever bytes a read happened to return, which may hold many
events, half an event, half a CRLF or half a UTF-8 character.

Reading follows the WHATWG EventSource parser, hardened for a proxy: bad
UTF-8 is an error rather than U+FFFD (a proxy must not guess what upstream
meant), and an event larger than ``max_event_bytes`` is an error rather than
unbounded memory. Writing emits only what every OpenAI SDK accepts (docs/wire.md,
"SSE framing"): never ``id:`` or ``retry:``, never an event without data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["SSEDecoder", "SSEError", "SSEEvent", "encode_comment", "encode_event"]

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event.

    ``id`` is WHATWG's last event ID: it persists across events until another
    ``id:`` line changes it. It is read but never relayed, since after any
    ``id:`` our keep-alives would break the Python SDK (docs/wire.md, "Keep-alives").
    """

    data: str
    event: str | None = None
    id: str | None = None


class SSEError(ValueError):
    """The upstream stream is not SSE we are willing to relay.

    After raising it the decoder refuses further input: resynchronising in
    the middle of a corrupt stream could splice unrelated fragments into an
    event, which a moderating proxy must never forward.
    """


class SSEDecoder:
    """Turn arbitrarily split bytes into complete events.

    Each ``feed()`` searches only the bytes it was given: everything already
    buffered is known to hold no line end, so byte-at-a-time input costs O(n)
    in total instead of rescanning the buffer on every call. Without that, a
    slow upstream sending one byte per packet could make us do quadratic work
    (the same DoS reasoning as h11's ``ReceiveBuffer``). The size of the event
    in progress is bounded by ``max_event_bytes`` for the same reason.
    """

    def __init__(self, max_event_bytes: int = 1 << 20) -> None:
        self._max_event_bytes = max_event_bytes
        self._buf = bytearray()  # an incomplete line, never holding CR or LF
        self._at_start = True  # a BOM may still arrive
        self._skip_lf = False  # the last line ended in CR; an LF next completes a CRLF
        self._data: list[str] = []
        self._event: str | None = None
        self._last_id: str | None = None
        self._event_bytes = 0  # lines of the event in progress, line ends counted as 1
        self._failure: str | None = None
        self._closed = False

    @property
    def pending_bytes(self) -> int:
        """Size of the event in progress as counted against ``max_event_bytes``."""
        return self._event_bytes + len(self._buf)

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Return the events that ``data`` completes, in stream order.

        Raises ``SSEError`` on invalid UTF-8 or an oversized event; the events
        completed earlier in the same call are then lost along with the
        stream, since the caller has to abort it anyway.
        """
        self._check_usable()
        if self._skip_lf and data:
            self._skip_lf = False
            if data.startswith(b"\n"):
                data = data[1:]
        buf = self._buf
        start = len(buf)
        buf += data
        if self._at_start:
            if len(buf) < len(_BOM) and _BOM.startswith(buf):
                return []
            self._at_start = False
            if buf.startswith(_BOM):
                del buf[: len(_BOM)]
                start = 0
        end = max(buf.rfind(b"\n", start), buf.rfind(b"\r", start))
        events: list[SSEEvent] = []
        if end >= 0:
            # Everything up to the last line end splits into whole lines, so a
            # multi-byte character can never be cut in two here.
            lines = buf[: end + 1].splitlines()
            self._skip_lf = buf.endswith(b"\r")
            del buf[: end + 1]
            events = self._process(lines)
        if self._event_bytes + len(buf) > self._max_event_bytes:
            raise self._fail(f"event exceeds {self._max_event_bytes} bytes without ending")
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: return the final event if it was never terminated.

        WHATWG and both SDKs drop such an event; we hand it to the caller
        instead, because a proxy should be lenient in what it reads. Any event
        returned here is by definition unterminated, so the caller can still
        choose to drop it. An incomplete last line counts as a line.
        """
        self._check_usable()
        self._closed = True
        tail = bytes(self._buf)
        self._buf.clear()
        return self._process([tail, b""])

    def _process(self, lines: Iterable[bytes | bytearray]) -> list[SSEEvent]:
        # The parser state lives in locals for the loop: this runs once per
        # line of every streamed token, so attribute lookups add up.
        events: list[SSEEvent] = []
        data = self._data
        event = self._event
        last_id = self._last_id
        size = self._event_bytes
        limit = self._max_event_bytes
        for raw in lines:
            if not raw:
                # An event without data is dropped, not dispatched: both SDKs
                # crash on an empty event (docs/wire.md, "SSE framing").
                if data:
                    events.append(SSEEvent("\n".join(data), event, last_id))
                    data = []
                event = None
                size = 0
                continue
            size += len(raw) + 1
            if size > limit:
                raise self._fail(f"event exceeds {limit} bytes")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise self._fail(f"invalid UTF-8 in line: {exc.reason}") from exc
            if line.startswith("data: "):
                # Nearly every line is framed this way (OpenAI's own framing),
                # so it skips the general parse below, which gives the same.
                data.append(line[6:])
                continue
            name, colon, value = line.partition(":")
            if colon and not name:
                continue  # a comment
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value or None  # WHATWG: an empty type means the default
            elif name == "id" and "\0" not in value:
                last_id = value
        self._data = data
        self._event = event
        self._last_id = last_id
        self._event_bytes = size
        return events

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise SSEError(f"stream already failed: {self._failure}")
        if self._closed:
            raise RuntimeError("SSEDecoder used after close()")

    def _fail(self, message: str) -> SSEError:
        self._failure = message
        return SSEError(message)


def encode_event(data: str, event: str | None = None) -> bytes:
    """Frame one event exactly as OpenAI does: ``event:`` if named, then data.

    A CR in ``data`` is a line end to every SSE reader, so CR, LF and CRLF all
    become separate ``data:`` lines and the client reads back ``data`` with
    each of them turned into LF, as it would have anyway. Normalising instead
    of raising keeps a stray CR in model text from killing a live stream.
    A lone surrogate raises ``UnicodeEncodeError``: we never emit bad UTF-8.
    """
    if "\r" in data:
        data = data.replace("\r\n", "\n").replace("\r", "\n")
    frame = "data: " + data.replace("\n", "\ndata: ") + "\n\n"
    if event is not None:
        if not event or "\n" in event or "\r" in event:
            # An empty name would read back as no name at all, and a line end
            # would let the name inject fields of its own.
            raise ValueError(f"invalid SSE event name: {event!r}")
        frame = "event: " + event + "\n" + frame
    return frame.encode("utf-8")


def encode_comment(text: str = "") -> bytes:
    """Frame a comment, e.g. a keep-alive, which every reader ignores.

    Safe for the Python SDK only because we never send ``id:`` (docs/wire.md,
    "Keep-alives").
    """
    if "\n" in text or "\r" in text:
        raise ValueError(f"SSE comment must be one line: {text!r}")
    return (": " + text + "\n\n" if text else ":\n\n").encode("utf-8")
