"""One moderated text channel: a sluice plus what an adapter needs around it.

Every adapter moderates the same way: feed a channel's deltas to its own sluice, send
what is released, log the hits, and remember enough to rewrite whatever repeats the text
later (done events, logprobs, annotation offsets). Keeping that here, once, is what lets
the three adapters differ only in where their wire shapes put the text.
"""

from __future__ import annotations

import bisect
from functools import partial
from typing import Any

from gateway.adapters.base import ChannelHit, Hits
from gateway.adapters.json_view import JsonCodec
from gateway.adapters.logprobs import TOKEN_ENTRIES, LogprobFormat, LogprobTrack
from gateway.adapters.unknown import token_is_clean
from gateway.sluice import ERROR_RULE, Action, Hit, Reason, SluiceConfig, Step
from gateway.sluice.budget import Tally
from gateway.sluice.classify import Tap, Taps


class Channel:
    """A text channel: deltas in, released text out, with the bookkeeping to rewrite echoes.

    ``json`` channels carry JSON text (tool-call arguments): the sluice sees the decoded
    view and released text is re-encoded (``json_view``). ``record`` keeps the released text
    and logprob entries, for APIs whose done events repeat them.

    Offsets: the sluice and logprobs count characters of the channel's *input*; the
    client sees *output* characters. ``map_span`` converts, so annotation indexes and
    legacy ``text_offset`` keep pointing at the same characters after a redaction.

    Each channel counts against its stream's ``tally`` (the stream's channel budget),
    and so do the logprob entries it holds.
    """

    __slots__ = (
        "_codec",
        "_entries",
        "_fmt",
        "_hits",
        "_keep",
        "_notice",
        "_notice_cfg",
        "_out",
        "_out_len",
        "_red_ends",
        "_red_out",
        "_red_starts",
        "_released",
        "_sluice",
        "_tap",
        "_text",
        "_track",
        "cut",
        "done",
        "name",
        "record",
    )

    def __init__(
        self,
        config: SluiceConfig,
        name: str,
        tally: Tally,
        *,
        json: bool = False,
        record: bool = False,
        logprobs: LogprobFormat = TOKEN_ENTRIES,
        taps: Taps | None = None,
    ) -> None:
        tally.open()  # before anything is allocated: past the budget, nothing is
        self.name = name
        self.record = record
        self.cut = False  # ended by a block (or a fail-closed error)
        self.done = False  # ended: nothing more will be released
        self._sluice = config.open()
        # Classifier rules judge prose; JSON (tool arguments) is left to the patterns.
        self._tap: Tap | None = taps.open(name) if taps is not None and not json else None
        self._notice_cfg = config.cutoff_notice
        self._hits: list[ChannelHit] = []  # decided since the owner last took them
        self._codec = JsonCodec() if json else None
        self._track = LogprobTrack(logprobs, tally)
        self._fmt = logprobs
        self._keep = partial(token_is_clean, config)
        self._out: list[str] = []
        self._text: str | None = None
        self._out_len = 0  # output characters released (the notice excluded)
        self._released = 0  # input characters released
        self._red_starts: list[int] = []  # redacted input spans, in order ...
        self._red_ends: list[int] = []
        self._red_out: list[int] = []  # ... and the output offset where each one ends
        self._entries: list[Any] = []
        self._notice: str | None = None  # a cutoff notice whose logprob entry is still due

    # -- text ------------------------------------------------------------------------

    def feed(self, delta: str) -> str:
        """Take the next delta; return the text to send now (maybe ``""``)."""
        if self.done or not delta:
            return ""
        text = self._codec.decode(delta) if self._codec is not None else delta
        self._track.add_text(text)
        return self._apply(self._sluice.feed(text), final=False)

    def finish(self) -> str:
        """The channel's text is complete: decide what is held and release it."""
        if self.done:
            return ""
        out = ""
        if self._codec is not None:
            tail = self._codec.close()
            self._track.add_text(tail)
            out = self._apply(self._sluice.feed(tail), final=False)
        if not self.done:
            out += self._apply(self._sluice.finish(), final=True)
        self.done = True
        return out

    def discard(self) -> None:
        """End without releasing what is held: an error ended the stream unchecked."""
        self.done = True
        self._notice = None
        self._track.take(final=True)

    def whole(self, text: str) -> str:
        """Moderate a complete text at once (non-streamed bodies): same rules as a stream."""
        return self.feed(text) + self.finish()

    @property
    def held(self) -> int:
        return 0 if self.done else self._sluice.held

    def take_hits(self) -> Hits:
        """The hits decided since the last call, for the owner to return with its events."""
        if not self._hits:
            return ()
        hits = tuple(self._hits)
        self._hits.clear()
        return hits

    @property
    def text(self) -> str:
        """Everything released so far (``record`` channels only), notice included."""
        if self._text is None:
            self._text = "".join(self._out)
            self._out = [self._text]
        return self._text

    @property
    def released(self) -> int:
        """Input characters released so far: whatever lies beyond was held or cut."""
        return self._released

    # -- logprobs --------------------------------------------------------------------

    def add_logprobs(self, entries: list[Any]) -> None:
        """Entries upstream sent for this channel's text (before or after the text)."""
        self._track.add(entries)

    def take_logprobs(self) -> list[tuple[int, Any]]:
        """Entries that may go out now, as ``(output offset, entry)``."""
        taken = self._track.take(final=self.done)
        scrub = self._fmt.scrub
        out = [(self.map_offset(start) or 0, scrub(entry, self._keep)) for start, entry in taken]
        if self.done and self._notice:
            note = self._track.synthetic(self._notice)
            if note is not None:
                out.append((self._out_len, note))
        self._notice = None if self.done else self._notice
        if self.record:
            self._entries.extend(entry for _, entry in out)
        return out

    @property
    def has_logprobs(self) -> bool:
        """Whether upstream sent any entries for this channel yet."""
        return self._track.started

    @property
    def logprobs(self) -> list[Any]:
        """Every entry released so far (``record`` channels only)."""
        return self._entries

    # -- offsets ---------------------------------------------------------------------

    def map_offset(self, offset: int) -> int | None:
        """Output offset of an input offset; ``None`` inside a redaction or past release."""
        if not 0 <= offset <= self._released:
            return None
        k = bisect.bisect_right(self._red_ends, offset)
        if k < len(self._red_starts) and self._red_starts[k] < offset:
            return None
        return offset + (self._red_out[k - 1] - self._red_ends[k - 1] if k else 0)

    def map_span(self, start: int, end: int) -> tuple[int, int] | None:
        """Output span of an input span, unless it touches a redaction or unreleased text."""
        if start > end:
            return None
        k = bisect.bisect_right(self._red_ends, start)
        if k < len(self._red_starts) and self._red_starts[k] < end:
            return None
        mapped_start, mapped_end = self.map_offset(start), self.map_offset(end)
        if mapped_start is None or mapped_end is None:
            return None
        return mapped_start, mapped_end

    # -- internals -------------------------------------------------------------------

    def _apply(self, step: Step, final: bool) -> str:
        if self._tap is not None:
            step = self._tap.step(step, final)
        self._hits.extend(ChannelHit(self.name, hit) for hit in step.hits)
        self._track.release(step.pieces)
        if self._codec is None:
            out, cut_at = self._plain(step), None
        else:
            out, cut_at = self._encode(step, final)
        if cut_at is not None:
            # A redaction with no valid place in the JSON: cut there instead (fail closed).
            error = Hit(ERROR_RULE, Action.BLOCK, cut_at, cut_at, Reason.ERROR)
            self._hits.append(ChannelHit(self.name, error))
            self._released = cut_at
        if step.cut or cut_at is not None:
            self.cut = self.done = True
            self._track.cut(self._released)
            self._notice = self._notice_cfg
            out += self._notice_cfg
        if self.record and out:
            self._out.append(out)
            self._text = None
        return out

    def _plain(self, step: Step) -> str:
        parts = []
        for piece in step.pieces:
            parts.append(piece.text)
            self._out_len += len(piece.text)
            if piece.redacted:
                self._red_starts.append(piece.start)
                self._red_ends.append(piece.end)
                self._red_out.append(self._out_len)
            self._released = piece.end
        return "".join(parts)

    def _encode(self, step: Step, final: bool) -> tuple[str, int | None]:
        assert self._codec is not None
        encoded = self._codec.encode(step.pieces, final or step.cut)
        if encoded.cut_at is None and step.pieces:
            self._released = step.pieces[-1].end
        self._out_len += len(encoded.raw)
        return encoded.raw, encoded.cut_at
