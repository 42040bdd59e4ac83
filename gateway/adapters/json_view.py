"""Moderate JSON text (tool-call arguments) so that a redaction keeps it valid JSON.

Arguments arrive as raw JSON text cut at arbitrary places, often inside an escape
(``"sk-ab\\u00``, ``"63def"``). Moderating the raw text would let a secret written with
escapes slip past the rules, and placing a replacement into raw text could break the
JSON. So the sluice sees a *logical* view instead: the text outside strings verbatim
(structure, numbers, literals, whitespace, the quotes) and the *decoded* content of
every string. Rules therefore match what the JSON means, whatever escapes carry it.

Released logical text is turned back into raw JSON here:

* text released unchanged goes out as the exact raw text upstream sent, so a stream no
  rule touches stays byte-for-byte the same, and an escape sequence is one logical
  character that is never split;
* a redaction inside one string's content becomes the JSON-escaped replacement;
* a redaction in a number or literal of which nothing has been sent yet turns the rest
  of that token into a JSON string (``5551234567`` -> ``"[REDACTED]"``): the quote opens
  at the redaction and closes where the token ends. Nothing is held for this: a rule
  that can match a token's start already makes the sluice hold it from there;
* a redaction anywhere else (across a quote, across tokens, in a bare token partly sent
  already) has no valid placement: the codec reports it and the channel is cut there,
  fail closed.
"""

from __future__ import annotations

import enum
import json
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.sluice import Piece

_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r"}
_SIMPLE_ESCAPES["t"] = "\t"
_HEX = frozenset("0123456789abcdefABCDEF")
_STRING_RUN = re.compile(r'[^"\\]+')
_SPACE_RUN = re.compile(r"[ \t\n\r{}\[\]:,]+")
_BARE_RUN = re.compile(r'[^ \t\n\r{}\[\]:,"]+')


class Kind(enum.IntEnum):
    """What a segment of the logical text is, which decides where a redaction may go."""

    RAW = 0  # structure, whitespace and quotes: never redactable in place
    STRING = 1  # string content whose raw text equals its logical text
    ESCAPE = 2  # one logical character written as an escape sequence
    BARE = 3  # part of a number or literal


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of logical text with the raw JSON that carried it."""

    kind: Kind
    token: int  # which string or bare token the run belongs to; -1 for RAW
    text: str  # logical text
    raw: str  # raw JSON text (equal to ``text`` except for ESCAPE)


def escape(text: str) -> str:
    """JSON string content for ``text`` (no quotes); lone surrogates become ``\\uXXXX``."""
    try:
        return orjson.dumps(text).decode()[1:-1]
    except orjson.JSONEncodeError:  # only a lone surrogate, which ``ensure_ascii`` escapes
        return json.dumps(text)[1:-1]


#: Levels of nesting orjson writes (it reads 1024). An event nested deeper can be neither
#: walked (the walkers recurse) nor written back, so it is refused like malformed JSON.
MAX_DEPTH = 255


def load_event(data: str) -> Any:
    """One event's JSON; ``orjson.JSONDecodeError`` also when it nests past ``MAX_DEPTH``.

    Counting brackets first keeps the exact check (a second serialisation) off the
    common path: an event with fewer opening brackets than the limit cannot be too deep.
    """
    value = orjson.loads(data)
    if data.count("[") + data.count("{") > MAX_DEPTH:
        try:
            orjson.dumps(value)
        except orjson.JSONEncodeError as exc:
            raise orjson.JSONDecodeError("nested too deeply", data, 0) from exc
    return value


class _State(enum.Enum):
    OUTSIDE = 0
    STRING = 1
    BARE = 2


class JsonLexer:
    """Splits raw JSON text into segments, incrementally and for any input at all.

    Malformed JSON is never an error: a model's arguments are not guaranteed valid, and
    whatever arrives must still be moderated. Runs are matched with one regex each, so
    the cost per delta is linear and mostly in C; only escapes go character by character.
    """

    __slots__ = ("_escape", "_state", "_token", "closed_bare")

    def __init__(self) -> None:
        self._state = _State.OUTSIDE
        self._escape = ""  # an escape sequence still incomplete, backslash included
        self._token = -1  # the current (or last) string or bare token
        self.closed_bare = -1  # the last bare token known to be complete

    def feed(self, raw: str) -> list[Segment]:
        out: list[Segment] = []
        i = 0
        while i < len(raw):
            if self._escape:
                self._escape += raw[i]
                i += 1
                rest = self._resolve_escape(out)
                if rest:
                    raw, i = rest + raw[i:], 0
            elif self._state is _State.STRING:
                i = self._string(raw, i, out)
            elif self._state is _State.BARE:
                i = self._bare(raw, i, out)
            else:
                i = self._outside(raw, i, out)
        return out

    def close(self) -> list[Segment]:
        """The input ended: an incomplete escape goes out as it came (invalid JSON anyway)."""
        out: list[Segment] = []
        while self._escape:
            pending, self._escape = self._escape, ""
            out.append(Segment(Kind.ESCAPE, self._token, pending[1:2] or "\\", pending[:2]))
            out.extend(self.feed(pending[2:]))
        if self._state is _State.BARE:
            self.closed_bare = self._token
            self._state = _State.OUTSIDE
        return out

    def _string(self, raw: str, i: int, out: list[Segment]) -> int:
        m = _STRING_RUN.match(raw, i)
        if m is not None:
            out.append(Segment(Kind.STRING, self._token, m.group(), m.group()))
            return m.end()
        if raw[i] == '"':
            out.append(Segment(Kind.RAW, -1, '"', '"'))
            self._state = _State.OUTSIDE
        else:
            self._escape = "\\"
        return i + 1

    def _outside(self, raw: str, i: int, out: list[Segment]) -> int:
        m = _SPACE_RUN.match(raw, i)
        if m is not None:
            out.append(Segment(Kind.RAW, -1, m.group(), m.group()))
            return m.end()
        self._token += 1
        if raw[i] == '"':
            out.append(Segment(Kind.RAW, -1, '"', '"'))
            self._state = _State.STRING
            return i + 1
        self._state = _State.BARE
        return i

    def _bare(self, raw: str, i: int, out: list[Segment]) -> int:
        m = _BARE_RUN.match(raw, i)
        if m is not None:
            out.append(Segment(Kind.BARE, self._token, m.group(), m.group()))
            return m.end()
        self.closed_bare = self._token
        self._state = _State.OUTSIDE
        return i

    def _resolve_escape(self, out: list[Segment]) -> str:
        """Emit the escape once it is decided; return raw text to read again, if any.

        A high surrogate waits for a following ``\\uDCxx`` so the pair becomes one
        character; anything invalid is kept as it came, one logical character per
        backslash, so it can be neither split nor lost.
        """
        esc = self._escape
        if len(esc) < 2:
            return ""
        if esc[1] != "u":
            self._emit_escape(out, _SIMPLE_ESCAPES.get(esc[1], esc[1]), esc)
            return ""
        digits = esc[2:6]
        if any(c not in _HEX for c in digits):
            self._emit_escape(out, "u", esc[:2])
            return esc[2:]
        if len(esc) < 6:
            return ""
        code = int(digits, 16)
        if not 0xD800 <= code < 0xDC00:
            self._emit_escape(out, chr(code), esc)
            return ""
        return self._resolve_pair(out, esc, code)

    def _resolve_pair(self, out: list[Segment], esc: str, high: int) -> str:
        low = esc[6:12]
        expected = "\\u"[: len(low)]
        if low[:2] != expected or any(c not in _HEX for c in low[2:]):
            self._emit_escape(out, chr(high), esc[:6])
            return esc[6:]
        if len(low) < 6:
            return ""
        code = int(low[2:], 16)
        if not 0xDC00 <= code < 0xE000:
            self._emit_escape(out, chr(high), esc[:6])
            return esc[6:]
        char = chr(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00))
        self._emit_escape(out, char, esc)
        return ""

    def _emit_escape(self, out: list[Segment], char: str, raw: str) -> None:
        out.append(Segment(Kind.ESCAPE, self._token, char, raw))
        self._escape = ""


@dataclass(frozen=True, slots=True)
class Encoded:
    """Raw JSON for released pieces; ``cut_at`` is set where a redaction has no valid place."""

    raw: str
    cut_at: int | None = None


class JsonCodec:
    """Logical text in for the sluice; raw JSON out for released pieces."""

    __slots__ = ("_bare", "_bare_raw", "_bare_string", "_lexer", "_offset", "_segs")

    def __init__(self) -> None:
        self._lexer = JsonLexer()
        self._segs: deque[Segment] = deque()  # segments not yet fully released
        self._offset = 0  # how much of ``_segs[0].text`` is already released
        self._bare = -1  # the bare token being sent ...
        self._bare_raw = False  # ... some of it went out as it came: it can no longer change
        self._bare_string = False  # ... a redaction turned it into a string still open

    def decode(self, raw: str) -> str:
        """The logical text that ``raw`` completes (an open escape waits for the rest)."""
        return self._add(self._lexer.feed(raw))

    def close(self) -> str:
        return self._add(self._lexer.close())

    def encode(self, pieces: tuple[Piece, ...], final: bool) -> Encoded:
        out: list[str] = []
        for piece in pieces:
            parts = self._take(piece.end - piece.start)
            if not piece.redacted:
                self._emit_parts(parts, out)
            elif not self._place(parts, piece.text, out):
                self._leave_bare(out)
                return Encoded("".join(out), piece.start)
        if final or self._bare_complete():
            self._leave_bare(out)
        return Encoded("".join(out))

    # -- internals -------------------------------------------------------------------

    def _add(self, segs: list[Segment]) -> str:
        self._segs.extend(segs)
        return "".join(s.text for s in segs)

    def _take(self, length: int) -> list[Segment]:
        """Consume ``length`` logical characters, splitting a run where a piece ends."""
        parts: list[Segment] = []
        while length > 0:
            seg = self._segs[0]
            avail = len(seg.text) - self._offset
            if length < avail:
                text = seg.text[self._offset : self._offset + length]
                parts.append(Segment(seg.kind, seg.token, text, text))
                self._offset += length
                return parts
            if self._offset:
                text = seg.text[self._offset :]
                seg = Segment(seg.kind, seg.token, text, text)
            parts.append(seg)
            self._segs.popleft()
            self._offset = 0
            length -= avail
        return parts

    def _emit_parts(self, parts: list[Segment], out: list[str]) -> None:
        for part in parts:
            if part.kind is not Kind.BARE:
                self._leave_bare(out)
                out.append(part.raw)
                continue
            self._enter_bare(part.token, out)
            if self._bare_string:
                out.append(escape(part.text))
            else:
                self._bare_raw = True
                out.append(part.raw)

    def _place(self, parts: list[Segment], replacement: str, out: list[str]) -> bool:
        """Put a replacement where the redacted parts were, if JSON allows it there."""
        token = parts[0].token
        if any(p.token != token for p in parts):
            return False
        if all(p.kind in (Kind.STRING, Kind.ESCAPE) for p in parts):
            self._leave_bare(out)
            out.append(escape(replacement))
            return True
        if not all(p.kind is Kind.BARE for p in parts):
            return False
        self._enter_bare(token, out)
        if self._bare_raw:
            return False
        if not self._bare_string:
            out.append('"')
            self._bare_string = True
        out.append(escape(replacement))
        return True

    def _enter_bare(self, token: int, out: list[str]) -> None:
        if token != self._bare:
            self._leave_bare(out)
            self._bare = token
            self._bare_raw = False

    def _leave_bare(self, out: list[str]) -> None:
        if self._bare_string:
            out.append('"')
            self._bare_string = False

    def _bare_complete(self) -> bool:
        """The bare token being sent has ended upstream and all of it is released."""
        token = self._bare
        if token > self._lexer.closed_bare:
            return False
        return not self._segs or self._segs[0].token != token
