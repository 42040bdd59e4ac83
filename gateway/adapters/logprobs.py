"""Logprob entries that travel with the text they cover, and never reveal what was hidden.

Every logprob entry names a token, and tokens spell the text. An entry for a held
character would show the client text the sluice has not released, and an entry for a
redacted character would undo the redaction. So each entry is placed on the channel's
input text and released by these rules (docs/wire.md, "Logprobs"):

1. Entries are placed by their bytes (the ``bytes`` field when there is one, else the
   UTF-8 of ``token``), in order from the start of the channel, and each must equal the
   text at its place. At the first entry that does not, the channel's logprobs stop for
   good: what cannot be placed cannot be checked.
2. An entry goes out once every character it touches has been released.
3. An entry touching a redacted span, together with every neighbour that touches the same
   span, is replaced by ONE synthetic entry whose token is exactly the released text of
   those entries' span (replacement included): ``logprob`` 0.0, ``bytes`` its UTF-8,
   ``top_logprobs`` empty. Tokens keep spelling the released text.
4. After a cut, entries from the cut on are dropped; an entry straddling the cut becomes a
   synthetic entry for its part before the cut, and the cutoff notice, if any, gets one
   synthetic entry of its own.
5. An alternative in ``top_logprobs`` that a rule fires on is removed from its entry: it
   is not text the model produced, but a banned word must not reach the client there
   either.

A token may end inside a multi-byte character (its ``bytes`` are a prefix of it); the
character then belongs to both entries that share it, and is released with both.

Entries waiting (for their text, or for its release) are counted against the stream's
``Tally``: upstream decides how many entries arrive before any text does, so without
that count one stream could hold a million of them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol

from gateway.sluice import Piece
from gateway.sluice.budget import Tally

#: Text a channel may accumulate while no entry arrives to place on it; past this, the
#: channel's logprobs are given up rather than keeping the whole text (bounded memory).
WINDOW_CAP = 1 << 16


class LogprobFormat(Protocol):
    """How one wire shape spells an entry."""

    def token_bytes(self, entry: Any) -> bytes | None:
        """The bytes the entry covers, or ``None`` when it cannot be placed."""

    def synthetic(self, text: str, like: Any) -> Any:
        """An entry for released ``text`` that reveals nothing else, shaped like ``like``."""

    def scrub(self, entry: Any, keep: Callable[[str], bool]) -> Any:
        """The entry with only the alternatives ``keep`` accepts (the same object if all)."""


class TokenEntries:
    """Chat ``logprobs.content[]`` and Responses ``logprobs[]``: ``{token, logprob, ...}``."""

    def token_bytes(self, entry: Any) -> bytes | None:
        if not isinstance(entry, dict):
            return None
        raw = entry.get("bytes")
        if isinstance(raw, list):
            try:
                return bytes(raw)
            except (TypeError, ValueError):
                return None
        token = entry.get("token")
        return token.encode("utf-8", "surrogatepass") if isinstance(token, str) else None

    def synthetic(self, text: str, like: Any) -> Any:
        out: dict[str, Any] = {"token": text, "logprob": 0.0}
        if isinstance(like, dict) and "bytes" in like:
            out["bytes"] = list(text.encode("utf-8", "surrogatepass"))
        out["top_logprobs"] = []
        return out

    def scrub(self, entry: Any, keep: Callable[[str], bool]) -> Any:
        """Rebuilt from what was checked, never copied (default deny).

        The entry was placed by its bytes, so its ``token`` goes out only if it spells
        those bytes (a token that differs from its ``bytes`` would be unplaced text);
        otherwise the token is respelled from them. Alternatives keep only a token a
        rule accepts, a number, and bytes that spell that token. Other members go.
        """
        placed = self.token_bytes(entry)
        if placed is None:
            return None
        token = entry.get("token")
        if not isinstance(token, str) or token.encode("utf-8", "surrogatepass") != placed:
            token = _spell(placed)
        out: dict[str, Any] = {"token": token, "logprob": _number(entry.get("logprob"))}
        if "bytes" in entry:
            out["bytes"] = list(placed)
        top = entry.get("top_logprobs")
        if isinstance(top, list):
            out["top_logprobs"] = [
                alternative
                for a in top
                if (alternative := _alternative(a, keep, with_bytes="bytes" in entry)) is not None
            ]
        elif "top_logprobs" in entry:
            out["top_logprobs"] = None
        return out


TOKEN_ENTRIES = TokenEntries()


def _number(value: Any) -> float:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _spell(raw: bytes) -> str:
    """A token's text from its bytes; a cut inside a character is written as OpenAI does."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in raw)


def _alternative(
    alternative: Any, keep: Callable[[str], bool], *, with_bytes: bool
) -> dict[str, Any] | None:
    if not isinstance(alternative, dict):
        return None
    token = alternative.get("token")
    if not isinstance(token, str) or not keep(token):
        return None
    out: dict[str, Any] = {"token": token, "logprob": _number(alternative.get("logprob"))}
    if with_bytes:
        out["bytes"] = list(token.encode("utf-8", "surrogatepass"))
    return out


class _Mapped(NamedTuple):
    start: int
    end: int
    dirty: bool  # must be replaced by a synthetic entry (clipped at a cut)
    entry: Any


def _utf8_len(char: str) -> int:
    code = ord(char)
    return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4


class LogprobTrack:
    """Places one channel's entries on its input text and releases them with it."""

    __slots__ = (
        "_base",
        "_broken",
        "_chunks",
        "_closed",
        "_counted",
        "_cursor",
        "_end",
        "_fmt",
        "_like",
        "_limit",
        "_mapped",
        "_queue",
        "_redactions",
        "_released",
        "_skip",
        "_tally",
        "_text",
    )

    def __init__(self, fmt: LogprobFormat, tally: Tally | None = None) -> None:
        self._fmt = fmt
        self._tally = tally
        self._counted = 0  # waiting entries last reported to the tally
        self._chunks: list[str] = []  # input text not yet joined onto ``_text``
        self._text = ""  # input text from absolute offset ``_base`` on
        self._base = 0
        self._end = 0  # input length so far
        self._cursor = 0  # where the next entry starts ...
        self._skip = 0  # ... and how many bytes of that character earlier entries took
        self._queue: deque[Any] = deque()  # entries waiting for their text
        self._mapped: deque[_Mapped] = deque()  # placed, not yet released
        self._redactions: deque[tuple[int, int, str]] = deque()
        self._released = 0
        self._limit: int | None = None
        self._like: Any = None
        self._broken = False
        self._closed = False

    @property
    def started(self) -> bool:
        return self._like is not None

    def add_text(self, text: str) -> None:
        if self._broken or self._closed or not text:
            return
        self._chunks.append(text)
        self._end += len(text)
        if self._end - self._base > WINDOW_CAP:
            self._give_up()

    def release(self, pieces: Iterable[Piece]) -> None:
        for piece in pieces:
            if piece.redacted and not self._closed:
                self._redactions.append((piece.start, piece.end, piece.text))
            self._released = piece.end

    def cut(self, at: int) -> None:
        self._limit = at

    def add(self, entries: list[Any]) -> None:
        if self._broken or self._closed or not entries:
            return
        if self._like is None:
            self._like = entries[0]
        self._queue.extend(entries)
        self._place()
        self._account()

    def synthetic(self, text: str) -> Any:
        """An entry for text no upstream entry covers (the cutoff notice), if entries flow."""
        return None if self._like is None else self._fmt.synthetic(text, self._like)

    def take(self, final: bool) -> list[tuple[int, Any]]:
        """Entries whose text is released, as ``(input offset, entry)``; ``final`` ends it."""
        if self._closed:
            return []
        self._place()  # entries that came before their text
        if self._mapped:
            self._join()
        if final and self._limit is not None:
            self._clip(self._limit)
        out: list[tuple[int, Any]] = []
        while self._mapped:
            head = self._mapped[0]
            while self._redactions and self._redactions[0][1] <= head.start:
                self._redactions.popleft()
            group = self._group(final)
            if group is None:
                break
            count, end = group
            if end > self._released:
                break
            if not self._overlaps(head.start, end) and not any(
                self._mapped[i].dirty for i in range(count)
            ):
                for _ in range(count):
                    m = self._mapped.popleft()
                    out.append((m.start, m.entry))
                continue
            cluster = self._cluster(final)
            if cluster is None:
                break
            out.append(cluster)
        if final:
            self._close()
        else:
            self._trim()
        self._account()
        return out

    def _group(self, final: bool) -> tuple[int, int] | None:
        """The head entry and those sharing a character with it (a token cut mid-UTF-8).

        Such entries go out together or not at all, so a synthetic entry never repeats
        the bytes of a character another entry already carried. ``None``: the last one
        shares its character with an entry still to come.
        """
        end, count = self._mapped[0].end, 1
        while count < len(self._mapped) and self._mapped[count].start < end:
            end = max(end, self._mapped[count].end)
            count += 1
        if count == len(self._mapped) and self._skip and not final:
            return None
        return count, end

    # -- placing ---------------------------------------------------------------------

    def _place(self) -> None:
        if not self._queue:
            return
        self._join()
        while self._queue:
            data = self._fmt.token_bytes(self._queue[0])
            if data is None:
                self._give_up()
                return
            placed = self._locate(data)
            if placed is None:
                return  # its text has not arrived yet
            if not placed:
                self._give_up()
                return
            self._queue.popleft()

    def _locate(self, data: bytes) -> bool | None:
        """Place the head entry; ``None`` = text missing so far, ``False`` = mismatch."""
        need = self._skip + len(data)
        rel = self._cursor - self._base
        window = self._text[rel : rel + need]  # every character is at least one byte
        if window.isascii():
            if len(window) < need:
                return None
            if window[self._skip :].encode() != data:
                return False
            chars, partial = need, 0
        else:
            encoded = window.encode("utf-8", "surrogatepass")
            if len(encoded) < need:
                return None
            if encoded[self._skip : need] != data:
                return False
            chars, partial = _count_chars(window, need)
        start = self._cursor
        end = start + chars + (1 if partial else 0)
        self._mapped.append(_Mapped(start, end, False, self._queue[0]))
        self._cursor, self._skip = start + chars, partial
        return True

    # -- releasing -------------------------------------------------------------------

    def _overlaps(self, start: int, end: int) -> bool:
        return bool(self._redactions) and self._redactions[0][0] < max(end, start + 1)

    def _cluster(self, final: bool) -> tuple[int, Any] | None:
        """Merge the head entry with every entry and redaction it overlaps, transitively."""
        start, end = self._mapped[0].start, self._mapped[0].end
        last, reds = 0, 0
        while True:
            grown = end
            while reds < len(self._redactions) and self._redactions[reds][0] < max(end, start + 1):
                grown = max(grown, self._redactions[reds][1])
                reds += 1
            while last + 1 < len(self._mapped) and self._mapped[last + 1].start < grown:
                last += 1
                grown = max(grown, self._mapped[last].end)
            if grown == end:
                break
            end = grown
        waiting = last + 1 == len(self._mapped) and (self._mapped[last].end < end or self._skip)
        if end > self._released or (waiting and not final):
            return None  # the rest of the span, or the entries covering it, still to come
        token = self._released_text(start, end, reds)
        like = self._mapped[0].entry
        for _ in range(last + 1):
            self._mapped.popleft()
        for _ in range(reds):
            self._redactions.popleft()
        return start, self._fmt.synthetic(token, like)

    def _released_text(self, start: int, end: int, reds: int) -> str:
        out, cur, base = [], start, self._base
        for i in range(reds):
            r_start, r_end, replacement = self._redactions[i]
            if r_start > cur:
                out.append(self._text[cur - base : r_start - base])
            out.append(replacement)
            cur = max(cur, r_end)
        if end > cur:
            out.append(self._text[cur - base : end - base])
        return "".join(out)

    def _clip(self, limit: int) -> None:
        clipped: deque[_Mapped] = deque()
        for m in self._mapped:
            if m.start >= limit:
                break
            clipped.append(m if m.end <= limit else _Mapped(m.start, limit, True, m.entry))
        self._mapped = clipped
        self._queue.clear()

    # -- memory ----------------------------------------------------------------------

    def _join(self) -> None:
        if self._chunks:
            self._text += "".join(self._chunks)
            self._chunks.clear()

    def _trim(self) -> None:
        keep = self._mapped[0].start if self._mapped else self._cursor
        while self._redactions and self._redactions[0][1] <= keep:
            self._redactions.popleft()
        drop = keep - self._base
        if drop > 256 and drop * 2 > len(self._text):
            self._text = self._text[drop:]
            self._base = keep

    def _give_up(self) -> None:
        """Stop this channel's logprobs; entries already placed were checked and may go."""
        self._broken = True
        self._queue.clear()
        self._chunks.clear()
        self._account()

    def _account(self) -> None:
        """Tell the tally how many entries wait now (it raises past the budget)."""
        if self._tally is not None:
            waiting = len(self._queue) + len(self._mapped)
            change, self._counted = waiting - self._counted, waiting
            if change:
                self._tally.hold(change)

    def _close(self) -> None:
        self._closed = True
        self._queue.clear()
        self._mapped.clear()
        self._redactions.clear()
        self._chunks.clear()
        self._text = ""


def _count_chars(window: str, need: int) -> tuple[int, int]:
    """How many whole characters ``need`` bytes cover, and the bytes of one more they take."""
    used = chars = 0
    for char in window:
        size = _utf8_len(char)
        if used + size > need:
            return chars, need - used
        used += size
        chars += 1
    return chars, 0
