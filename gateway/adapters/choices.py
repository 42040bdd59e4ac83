"""Streams made of ``choices`` chunks ended by ``[DONE]``: Chat and legacy Completions.

Both APIs stream the same way (docs/wire.md, "Chat Completions,
streaming" and "Legacy Completions"): every chunk repeats the envelope (``id``,
``model`` ...) around a list of per-choice entries, an optional usage chunk comes last,
and ``data: [DONE]`` ends it all. What differs is only where an entry carries its text,
so that is a ``ChoiceShape``; the envelope, the end of the stream and its errors are
handled once, here.

How a stream ends is what a client trusts most, so each way is chosen for the SDKs:

* every choice has ended and upstream sent ``[DONE]``: pass it on;
* every choice was cut: ``[DONE]`` at once (no usage chunk; upstream is cancelled);
* upstream broke, ended early or sent a malformed event: an ``error`` event, which both
  SDKs raise as ``APIError``, and no ``[DONE]``: a cut-off answer must never look
  complete. Held text is discarded, not released: it was never fully checked;
* the stream crossed one of its budgets (``sluice.budget``: too many choices, channels
  or tool calls, too many logprob entries waiting, the request's scan time spent): the
  same ``error`` event, with code ``budget_exceeded``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import orjson

from gateway.adapters.base import ChannelHit, Hits, Moderated, OutEvent
from gateway.adapters.channels import Channel
from gateway.adapters.json_view import load_event
from gateway.adapters.logprobs import TOKEN_ENTRIES, LogprobFormat
from gateway.adapters.unknown import UNKNOWN, Unknown, blank, place
from gateway.sluice import SluiceConfig
from gateway.sluice.budget import BudgetExceeded, Tally
from gateway.sluice.classify import Taps

DONE = OutEvent("[DONE]")
#: Envelope members whose moderated value is remembered (upstream chooses the names).
_SEEN_LIMIT = 256

#: Where a channel's text sits inside a choice entry, e.g. ``("delta", "content")``.
Path = tuple[str | int, ...]


class ChoiceState:
    """One choice's channels and whether it has ended (normally or by a cut).

    ``tally`` is the stream's (or body's): every channel, tool call and unknown delta
    member a choice opens counts against the same budget as the choices themselves.
    """

    __slots__ = (
        "_config",
        "_hits",
        "calls",
        "channels",
        "cut",
        "ended",
        "frames",
        "index",
        "offset_base",
        "sent",
        "tally",
        "taps",
        "tools",
    )

    def __init__(
        self, index: int, config: SluiceConfig, tally: Tally, taps: Taps | None = None
    ) -> None:
        self.index = index
        self._config = config
        self.tally = tally
        self.taps = taps
        self._hits: list[ChannelHit] = []  # decided outside any channel (``whole_unknown``)
        self.channels: dict[Path, Channel] = {}
        self.ended = False
        self.cut = False
        self.tools: set[int] = set()  # chat: tool-call indexes already seen
        self.calls: dict[int, dict[str, Any]] = {}  # chat: whole tool calls not yet sent
        self.sent: set[Path] = set()  # chat: members a client reads once, already sent
        self.offset_base: int | None = None  # legacy: ``text_offset`` of input offset 0
        self.frames: dict[str, Any] = {}  # the last value of each unknown delta key

    def channel(
        self,
        path: Path,
        *,
        json: bool = False,
        record: bool = False,
        logprobs: LogprobFormat = TOKEN_ENTRIES,
    ) -> Channel:
        found = self.channels.get(path)
        if found is None:
            # Names are the gateway's vocabulary: an unknown path's upstream member names
            # never become a channel name (they reach metrics and the audit log).
            tail = path[:1] if path[0] == UNKNOWN else path
            name = f"choices[{self.index}]" + "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}" for p in tail
            )
            found = Channel(
                self._config,
                name,
                self.tally,
                json=json,
                record=record,
                logprobs=logprobs,
                taps=self.taps,
            )
            self.channels[path] = found
        return found

    def feed(self, path: Path, text: str, *, json: bool = False) -> str:
        """Feed one channel; a cut there ends the choice, and nothing is fed after it."""
        if self.cut:
            return ""
        channel = self.channel(path, json=json)
        out = channel.feed(text)
        self.cut |= channel.cut
        return out

    @property
    def config(self) -> SluiceConfig:
        return self._config

    def finish(self, only: Callable[[Path], bool] | None = None) -> Iterator[tuple[Path, str]]:
        """Finish open channels (all, or those ``only`` picks), yielding what each releases.

        A cut in one ends the choice; the others are still finished, since everything they
        hold arrived before the cut and is checked as complete text.
        """
        for path, channel in list(self.channels.items()):
            if channel.done or (only is not None and not only(path)):
                continue
            text = channel.finish()
            self.cut |= channel.cut
            if text:
                yield path, text

    def whole(self, path: Path, text: str, *, json: bool = False) -> str | None:
        """Moderate a complete field (non-streamed body); ``None`` once the choice is cut."""
        if self.cut:
            return None
        channel = self.channel(path, json=json)
        out = channel.whole(text)
        self.cut |= channel.cut
        return out

    def whole_logprobs(
        self, path: Path, entries: list[Any], fmt: LogprobFormat
    ) -> list[tuple[int, Any]]:
        """The entries of a complete field that may go out, as ``(output offset, entry)``."""
        channel = self.channel(path, logprobs=fmt)
        if not channel.done:
            channel.finish()  # a field that carried no text: nothing to place entries on
        channel.add_logprobs(entries)
        return channel.take_logprobs()

    @property
    def held(self) -> int:
        return sum(ch.held for ch in self.channels.values())

    def unknown_delta(self, key: str, value: Any) -> Any:
        """A streamed delta member no adapter knows: a channel per path below ``key``."""
        if key not in self.frames:
            self.tally.open()
        self.frames[key] = value
        unknown = Unknown(self._config, f"choices[{self.index}].{UNKNOWN}", self._feed_unknown(key))
        return unknown.value(value)

    def release_unknown(self, node: dict[str, Any], path: Path, text: str) -> None:
        """Held text of an unknown delta member goes out in the frame its last delta had
        (structure kept, text emptied), so a client finds it where it expects it."""
        key = str(path[1])
        if key not in node and not isinstance(self.frames.get(key), str):
            node[key] = blank(self.frames.get(key))
        place(node, path[1:], text)

    def unknown_whole(self, value: Any, path: Path = ()) -> Any:
        """A value outside the deltas no adapter knows, moderated whole where it stands
        (``path`` ends with its member name, which decides whether it is structural)."""
        unknown = Unknown(self._config, f"choices[{self.index}].{UNKNOWN}")
        out = unknown.value(value, path)
        self._hits.extend(unknown.hits)
        return out

    def _feed_unknown(self, key: str) -> Callable[[Path, str], str]:
        return lambda path, text: self.feed((UNKNOWN, key, *path), text)

    def take_hits(self) -> Hits:
        """Every hit the choice decided since the last call."""
        hits = tuple(hit for ch in self.channels.values() for hit in ch.take_hits())
        if self._hits:
            hits += tuple(self._hits)
            self._hits.clear()
        return hits

    def discard(self) -> None:
        for channel in self.channels.values():
            channel.discard()
        self.ended = True


class ChoiceShape(Protocol):
    """Where one API's choice entries carry text."""

    def rewrite(
        self, choice: ChoiceState, entry: dict[str, Any], first: bool
    ) -> dict[str, Any] | None:
        """Moderate one upstream entry; ``None`` drops it (all its text is held)."""

    def close(self, choice: ChoiceState) -> dict[str, Any] | None:
        """Finish the choice's open channels; an entry carrying what they release, if any."""


def error_event(code: str, message: str, type_: str = "upstream_error") -> OutEvent:
    """The mid-stream error both SDKs raise as ``APIError`` (docs/wire.md, "Errors after a 200")."""
    body = {"error": {"message": message, "type": type_, "code": code, "param": None}}
    return OutEvent(orjson.dumps(body).decode())


def requested_choices(body: dict[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1


class ChoiceStream:
    """``StreamModerator`` for chunked-choices streams; the shape does the entries."""

    def __init__(
        self,
        shape: ChoiceShape,
        body: dict[str, Any],
        config: SluiceConfig,
        taps: Taps | None = None,
    ) -> None:
        self._shape = shape
        self._config = config
        self._taps = taps
        self._expected = requested_choices(body)
        self._choices: dict[int, ChoiceState] = {}
        self._tally = Tally()
        self._envelope: dict[str, Any] | None = None  # the last chunk, to build new ones from
        self._finished = False
        self._hits: list[ChannelHit] = []  # decided in the envelope, outside any choice
        self._seen: dict[str, tuple[Any, Any]] = {}  # envelope member -> (upstream, moderated)

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def held(self) -> int:
        return sum(c.held for c in self._choices.values())

    def on_event(self, data: str, event: str | None) -> Moderated:
        try:
            return self._moderated(self._event(data))
        except BudgetExceeded as exc:
            return self._moderated(self._over_budget(exc))

    def on_eof(self) -> Moderated:
        try:
            return self._moderated(self._eof())
        except BudgetExceeded as exc:
            return self._moderated(self._over_budget(exc))

    def on_upstream_error(self, message: str) -> Moderated:
        if self._finished:
            return Moderated([])
        return self._moderated(
            self._fail("upstream_error", message or "The connection to the upstream API failed.")
        )

    # -- internals -------------------------------------------------------------------

    def _moderated(self, events: list[OutEvent]) -> Moderated:
        hits = tuple(hit for state in self._choices.values() for hit in state.take_hits())
        if self._hits:
            hits += tuple(self._hits)
            self._hits.clear()
        return Moderated(events, hits)

    def _outside_choices(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """The chunk's members other than ``choices``, moderated whole (default deny):
        ids and model names by shape, ``usage`` numbers as they are, anything else as text.
        Key order is upstream's, and the parse is what is sent: duplicate keys collapse to
        the one value that was moderated."""
        unknown = Unknown(self._config, "envelope")
        seen = self._seen
        out: dict[str, Any] = {}
        for key, value in chunk.items():
            if key == "choices":
                out[key] = []  # its place, for the entries (``null`` would break the SDKs)
                continue
            known = seen.get(key)
            if known is not None and known[0] == value and isinstance(value, str | int):
                out[key] = known[1]  # every chunk repeats the id, the model ...: judged once
            elif unknown.member(key):
                out[key] = moderated = unknown.value(value, (key,))
                if key in seen or len(seen) < _SEEN_LIMIT:
                    seen[key] = (value, moderated)
        self._hits.extend(unknown.hits)
        return out

    def _event(self, data: str) -> list[OutEvent]:
        if self._finished:
            return []
        if data.startswith("[DONE]"):
            return self._end()
        try:
            chunk = load_event(data)
        except orjson.JSONDecodeError:
            return self._fail(
                "upstream_malformed_event", "Upstream sent an event that is not JSON."
            )
        if not isinstance(chunk, dict):
            return self._fail("upstream_malformed_event", "Upstream sent an unexpected event.")
        choices = chunk.get("choices")
        if chunk.get("error"):
            # Upstream's own error (also beside choices, as OpenRouter sends it): the stream
            # ends there; what its choices held was never checked whole, so it is dropped.
            self._discard()
            self._finished = True
            return [_event(self._outside_choices(chunk))]
        if choices is None:
            return [_event(self._outside_choices(chunk))]  # e.g. some servers' usage chunk
        if not isinstance(choices, list):
            return self._fail("upstream_malformed_event", "Upstream sent a malformed chunk.")
        return self._chunk(self._outside_choices(chunk), choices)

    def _eof(self) -> list[OutEvent]:
        if self._finished:
            return []
        states = self._choices.values()
        if len(states) >= self._expected and all(c.ended for c in states):
            # Every choice said how it ended; only the [DONE] marker went missing.
            return self._end()
        return self._fail(
            "upstream_incomplete", "Upstream ended the stream before it was complete."
        )

    def _chunk(self, chunk: dict[str, Any], choices: list[Any]) -> list[OutEvent]:
        out: list[OutEvent] = []
        usage = chunk.get("usage") is not None
        if not choices and usage:
            out.extend(self._close_open())  # the usage chunk comes after every choice's text
        self._envelope = chunk
        entries: list[Any] = []
        cut = False
        for entry in choices:
            if not isinstance(entry, dict) or not _is_index(entry.get("index", 0)):
                return self._fail("upstream_malformed_event", "Upstream sent a malformed choice.")
            index = entry.get("index", 0)
            state = self._choices.get(index)
            first = state is None
            if state is None:
                self._tally.open()
                state = self._choices[index] = ChoiceState(
                    index, self._config, self._tally, self._taps
                )
            rewritten = self._shape.rewrite(state, entry, first)
            cut |= state.cut
            if rewritten is not None:
                entries.append(rewritten)
        if entries or not choices or usage:
            chunk["choices"] = entries
            out.append(_event(chunk))
        if cut and self._all_cut():
            self._finished = True
            out.append(DONE)
        return out

    def _close_open(self) -> list[OutEvent]:
        """Finish every choice upstream left open; send what they still held."""
        entries = []
        for state in self._choices.values():
            if not state.ended:
                entry = self._shape.close(state)
                state.ended = True
                if entry is not None:
                    entries.append(entry)
        if not entries or self._envelope is None:
            return []
        chunk = {
            key: entries if key == "choices" else None if key == "usage" else value
            for key, value in self._envelope.items()
        }
        return [OutEvent(orjson.dumps(chunk).decode())]

    def _all_cut(self) -> bool:
        states = self._choices
        return len(states) >= self._expected and all(c.cut for c in states.values())

    def _end(self) -> list[OutEvent]:
        out = self._close_open()
        out.append(DONE)
        self._finished = True
        return out

    def _fail(self, code: str, message: str) -> list[OutEvent]:
        self._discard()
        self._finished = True
        return [error_event(code, message)]

    def _over_budget(self, exc: BudgetExceeded) -> list[OutEvent]:
        """Whatever the event had produced so far is dropped with the held text."""
        self._discard()
        self._finished = True
        return [error_event(exc.code, str(exc), "server_error")]

    def _discard(self) -> None:
        for state in self._choices.values():
            state.discard()


def append_text(node: dict[str, Any], path: Path, text: str) -> None:
    """Append released text at ``path`` below ``node``, creating the objects missing."""
    for key in path[:-1]:
        child = node.get(str(key))
        if not isinstance(child, dict):
            child = node[str(key)] = {}
        node = child
    last = str(path[-1])
    previous = node.get(last)
    node[last] = (previous if isinstance(previous, str) else "") + text


def is_empty(value: Any) -> bool:
    """Nothing worth sending: only ``""``, ``None`` and empty containers (``index`` aside)."""
    if value is None or value == "":
        return True
    if isinstance(value, dict):
        return all(is_empty(v) for k, v in value.items() if k != "index")
    if isinstance(value, list):
        return all(is_empty(v) for v in value)
    return False


def _event(chunk: dict[str, Any]) -> OutEvent:
    return OutEvent(orjson.dumps(chunk).decode())


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
