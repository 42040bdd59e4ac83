"""Responses API (``/v1/responses``): typed events whose text repeats many times.

Every text-carrying delta (docs/wire.md, "Responses, streaming") is a channel keyed by output
item and part: ``(output_index, slot, index)``. The same text then comes back in done events, in
the part and item objects, and in the whole ``response`` of the lifecycle events; each of those
is rewritten from its channel's *released* text, so what a client reads anywhere is exactly what
the deltas gave it. A channel still holding text when one of those echoes arrives is finished
first, and what it releases goes out as one more delta just before the echo.

A block ends the whole response: the cut delta carries the text before the match (and
the cutoff notice), then every open part and item gets its done events with the text
released so far, and ``response.incomplete`` (``incomplete_details.reason:
"content_filter"``) closes the stream, built from the snapshot of ``response.created``
/ ``in_progress`` and the items seen. ``sequence_number`` is renumbered on everything
sent, so it stays gapless however many events are held back, dropped or added.

Upstream picks every index, so what one response may open is counted (``sluice.budget``):
channels, output items, parts and learnt event kinds against the channel budget, and
annotations waiting for their text against the pending-entries budget. Past either, or
past the request's scan time, the stream ends with an ``error`` event (code
``budget_exceeded``) and nothing held is released.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.adapters.base import (
    ApiAdapter,
    ChannelHit,
    Hits,
    Moderated,
    ModeratedBody,
    OutEvent,
    StreamModerator,
    TextField,
)
from gateway.adapters.channels import Channel
from gateway.adapters.json_view import load_event
from gateway.adapters.request_shapes import RESPONSES_TEXT
from gateway.adapters.unknown import (
    STRUCTURAL,
    UNKNOWN,
    Path,
    Unknown,
    blank,
    is_clean,
    place,
)
from gateway.sluice import SluiceConfig
from gateway.sluice.budget import BudgetExceeded, Tally
from gateway.sluice.classify import Taps

ROUTE = "/v1/responses"

Key = tuple[int, str, int]  # (output_index, slot, content/summary index)


@dataclass(frozen=True, slots=True)
class TextKind:
    """One kind of streamed text: its delta and done events and where it sits."""

    slot: str  # "content" and "summary" are part lists of an item; others are item fields
    index_field: str | None  # the event field naming the part, if any
    text_field: str | None  # the field repeating the text in the done event and part/item
    json: bool  # JSON text (arguments)
    delta: str
    done: str
    part_type: str | None = None  # the part type carrying this text


_KINDS = (
    TextKind(
        "content", "content_index", "text", False, "response.output_text.delta",
        "response.output_text.done", "output_text",
    ),
    TextKind(
        "content", "content_index", "refusal", False, "response.refusal.delta",
        "response.refusal.done", "refusal",
    ),
    TextKind(
        "content", "content_index", "text", False, "response.reasoning_text.delta",
        "response.reasoning_text.done", "reasoning_text",
    ),
    TextKind(
        "summary", "summary_index", "text", False, "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "summary_text",
    ),
    TextKind(
        "arguments", None, "arguments", True, "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
    ),
    TextKind(
        "arguments", None, "arguments", True, "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
    ),
    TextKind(
        "input", None, "input", False, "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
    ),
    TextKind(
        "code", None, "code", False, "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
    ),
    TextKind(
        "transcript", None, None, False, "response.audio.transcript.delta",
        "response.audio.transcript.done",
    ),
)  # fmt: skip
_BY_DELTA = {k.delta: k for k in _KINDS}
_BY_DONE = {k.done: k for k in _KINDS}
_PART_KINDS = {k.part_type: k for k in _KINDS if k.part_type is not None}
_ITEM_KINDS = {
    "function_call": _BY_DELTA["response.function_call_arguments.delta"],
    "mcp_call": _BY_DELTA["response.mcp_call_arguments.delta"],
    "custom_tool_call": _BY_DELTA["response.custom_tool_call_input.delta"],
    "code_interpreter_call": _BY_DELTA["response.code_interpreter_call_code.delta"],
}
_PART_SLOTS = {"content": "content_index", "summary": "summary_index"}
_PART_ADDED = {
    "response.content_part.added": "content",
    "response.reasoning_summary_part.added": "summary",
}
_PART_DONE = {
    "response.content_part.done": "content",
    "response.reasoning_summary_part.done": "summary",
}
_DONE_OF_SLOT = {v: k for k, v in _PART_DONE.items()}
#: Members of items, parts and responses that the code above rewrites itself; every
#: other member goes through ``ResponseTexts.other`` (default deny).
_ITEM_OWN = frozenset({"content", "summary"})
_PART_OWN = frozenset({"annotations", "logprobs"})
_RESPONSE_OWN = frozenset({"output", "output_text"})
_ANNOTATION_OWN = frozenset({"start_index", "end_index", "index", "title", "url"})
#: Event members a handler rewrote before ``_emit`` (everything else is moderated there).
_DELTA_OWN = frozenset({"delta", "logprobs"})
_PART_EVENT_OWN = frozenset({"part"})
_ITEM_EVENT_OWN = frozenset({"item"})
_RESPONSE_EVENT_OWN = frozenset({"response"})
_LIFECYCLE = frozenset({"response.created", "response.queued", "response.in_progress"})
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


class ResponseCut(Exception):
    """A channel was cut: the response ends here (streaming only)."""


# -- the text of one response ----------------------------------------------------------


class ResponseTexts:
    """The channels of one response, and how items, parts and echoes map onto them.

    Shared by the stream and the non-streamed body, so both rewrite the same fields the
    same way. ``on_finish`` lets the stream send what a channel releases when an echo
    forces it to finish; ``strict`` makes a cut raise ``ResponseCut`` (streaming).
    """

    def __init__(
        self,
        config: SluiceConfig,
        on_finish: Callable[[Key, Channel, str], None] | None = None,
        *,
        strict: bool = False,
        taps: Taps | None = None,
    ) -> None:
        self.config = config
        self.taps = taps
        self.tally = Tally()  # the stream's (or body's) budget for what upstream opens
        self.channels: dict[Key, Channel] = {}
        self.cut = False
        self.strict = strict
        self._on_finish = on_finish
        self._hits: list[ChannelHit] = []  # decided by ``other``, outside any channel

    def channel(self, key: Key, json: bool = False) -> Channel:
        found = self.channels.get(key)
        if found is None:
            o, slot, i = key
            if slot.startswith(UNKNOWN):
                slot = UNKNOWN  # an upstream event name never becomes a channel name
            name = f"output[{o}].{slot}" + (f"[{i}]" if slot in _PART_SLOTS else "")
            found = self.channels[key] = Channel(
                self.config, name, self.tally, json=json, record=True, taps=self.taps
            )
        return found

    def take_hits(self) -> Hits:
        """Every hit decided since the last call."""
        hits = tuple(hit for channel in self.channels.values() for hit in channel.take_hits())
        if self._hits:
            hits += tuple(self._hits)
            self._hits.clear()
        return hits

    def other(self, value: Any, path: Path, final: bool) -> Any:
        """A value no adapter knows (default deny), moderated whole where it stands.

        In an echo that is not final yet (``output_item.added``, ``content_part.added``)
        only its structure goes out: a partial value could show the start of a match the
        final one completes.
        """
        unknown = self._unknown(final)
        out = unknown.value(value, path)
        self._settle(unknown)
        return out

    def members(self, node: dict[str, Any], own: frozenset[str], final: bool) -> None:
        """Every member of ``node`` outside ``own`` as ``other`` does; unsafe names go."""
        unknown = self._unknown(final)
        for key in list(node):
            if key in own:
                continue
            if unknown.member(key):
                node[key] = unknown.value(node[key], (key,))
            else:
                del node[key]
        self._settle(unknown)

    def _unknown(self, final: bool) -> Unknown:
        return Unknown(self.config, f"output.{UNKNOWN}", blank=not final)

    def _settle(self, unknown: Unknown) -> None:
        """Take what moderating unknown values decided: their hits, and a cut."""
        self._hits.extend(unknown.hits)
        if unknown.cut:
            self.cut = True
            if self.strict:
                raise ResponseCut

    def note(self, channel: Channel) -> None:
        if channel.cut:
            self.cut = True
            if self.strict:
                raise ResponseCut

    def text(self, key: Key, value: str, final: bool, json: bool = False) -> Channel:
        """The channel behind a text an echo repeats; a new one starts from ``value``."""
        channel = self.channels.get(key)
        if channel is None:
            channel = self.channel(key, json)
            channel.feed(value)
            if final:
                channel.finish()
            self.note(channel)
        elif final:
            self.finish(key)
        return channel

    def finish(self, key: Key) -> None:
        channel = self.channels[key]
        if channel.done:
            return
        out = channel.finish()
        if self._on_finish is not None:
            self._on_finish(key, channel, out)
        self.note(channel)

    def finish_where(self, keep: Callable[[Key], bool]) -> None:
        for key in sorted(self.channels):
            if keep(key):
                self.finish(key)

    def item(self, o: int, item: dict[str, Any], final: bool) -> None:
        """Rewrite an output item in place (parts after a cut are dropped)."""
        self.item_field(o, item, final)
        for slot in _PART_SLOTS:
            parts = item.get(slot)
            if isinstance(parts, list):
                item[slot] = [
                    p if isinstance(p, dict) else self.other(p, (), final)
                    for i, p in enumerate(parts)
                    if not isinstance(p, dict) or self.part(o, slot, i, p, final)
                ]
        kind = _ITEM_KINDS.get(_type(item))
        own = _ITEM_OWN if kind is None else _ITEM_OWN | {kind.text_field or ""}
        self.members(item, own, final)

    def item_field(self, o: int, item: dict[str, Any], final: bool) -> None:
        kind = _ITEM_KINDS.get(_type(item))
        if kind is not None and kind.text_field is not None:
            value = item.get(kind.text_field)
            if isinstance(value, str) and not (self.cut and (o, kind.slot, 0) not in self.channels):
                channel = self.text((o, kind.slot, 0), value, final, kind.json)
                withdrawn = kind.json and channel.cut and self.config.whole_tool_calls
                item[kind.text_field] = "" if withdrawn else channel.text

    def part(self, o: int, slot: str, i: int, part: dict[str, Any], final: bool) -> bool:
        """Rewrite a part in place; ``False`` drops it (it would come after a cut)."""
        kind = _PART_KINDS.get(_type(part))
        value = part.get(kind.text_field) if kind is not None and kind.text_field else None
        if kind is None or kind.text_field is None or not isinstance(value, str):
            self.members(part, frozenset(), final)
            return True
        key = (o, slot, i)
        if self.cut and key not in self.channels:
            return False
        self.members(part, _PART_OWN | {kind.text_field}, final)
        channel = self.text(key, value, final)
        part[kind.text_field] = channel.text
        annotations = part.get("annotations")
        if isinstance(annotations, list):
            mapped = (self.annotation(channel, a) for a in annotations)
            part["annotations"] = [a for a in mapped if a is not None]
        entries = part.get("logprobs")
        if isinstance(entries, list):
            part["logprobs"] = self.logprobs(channel, entries)
        return True

    def annotation(self, channel: Channel, annotation: Any) -> Any:
        """The annotation on the released text, or ``None`` if it touches hidden text."""
        if not isinstance(annotation, dict):
            return annotation
        start, end = annotation.get("start_index"), annotation.get("end_index")
        if isinstance(start, int) and isinstance(end, int):
            span = channel.map_span(start, end)
            if span is None:
                return None
            annotation["start_index"], annotation["end_index"] = span
        index = annotation.get("index")
        if isinstance(index, int):
            mapped = channel.map_offset(index)
            if mapped is None:
                return None
            annotation["index"] = mapped
        for name in ("title", "url"):
            value = annotation.get(name)
            if isinstance(value, str) and not is_clean(self.config, value):
                return None
        self.members(annotation, _ANNOTATION_OWN, True)
        return annotation

    def logprobs(self, channel: Channel, entries: list[Any]) -> list[Any]:
        """The entries released for a channel (from its deltas, else from ``entries``)."""
        if not channel.has_logprobs:
            channel.add_logprobs(entries)
            channel.take_logprobs()
        return list(channel.logprobs)

    def output(self, response: dict[str, Any], final: bool) -> None:
        """Rewrite ``response.output`` (and ``output_text``) in place."""
        self.members(response, _RESPONSE_OWN, True)
        output = response.get("output")
        if isinstance(output, list):
            kept = []
            for o, item in enumerate(output):
                if self.cut:
                    break
                if isinstance(item, dict):
                    self.item(o, item, final)
                    if self.cut:
                        item["status"] = "incomplete"
                    kept.append(item)
                else:
                    kept.append(self.other(item, (), final))
            response["output"] = kept
        elif "output" in response:
            response["output"] = self.other(output, ("output",), final)
        if "output_text" in response:
            response["output_text"] = _output_text(response.get("output"))


def _output_text(output: Any) -> str:
    """What the SDKs compute as ``output_text``: every ``output_text`` part, in order."""
    if not isinstance(output, list):
        return ""
    return "".join(
        part["text"]
        for item in output
        if isinstance(item, dict) and item.get("type") == "message"
        for part in (item["content"] if isinstance(item.get("content"), list) else [])
        if isinstance(part, dict)
        and part.get("type") == "output_text"
        and isinstance(part.get("text"), str)
    )


def _type(node: dict[str, Any]) -> str:
    """A node's ``type``, or ``""`` when upstream sent something that is not a name."""
    kind = node.get("type")
    return kind if isinstance(kind, str) else ""


def _key(event: dict[str, Any], kind: TextKind) -> Key:
    o = event.get("output_index", -1)
    i = event.get(kind.index_field, 0) if kind.index_field else 0
    return (o if isinstance(o, int) else -1, kind.slot, i if isinstance(i, int) else 0)


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = orjson.loads(orjson.dumps(value))
    return copied


# -- streaming -------------------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    """An output item as announced, and which of its done events were sent."""

    item: dict[str, Any]  # upstream's item as added (then as sent when done)
    done: bool = False
    parts: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    parts_done: set[tuple[str, int]] = field(default_factory=set)
    texts_done: set[tuple[str, int]] = field(default_factory=set)


class ResponsesStream:
    """``StreamModerator`` for ``/v1/responses`` streams."""

    def __init__(
        self, body: dict[str, Any], config: SluiceConfig, taps: Taps | None = None
    ) -> None:
        self._texts = ResponseTexts(config, self._flushed, strict=True, taps=taps)
        self._items: dict[int, _Item] = {}
        self._response: dict[str, Any] | None = None
        self._deltas: dict[Key, tuple[dict[str, Any], TextKind, str | None]] = {}
        self._annotations: dict[Key, list[tuple[dict[str, Any], str | None]]] = {}
        self._annotation_count: dict[Key, int] = {}
        self._seq: int | None = None
        self._out: list[OutEvent] = []
        self._terminal = False
        self._finished = False
        self._whole: dict[Key, str] = {}  # tool arguments released, sent once complete
        self._parts: dict[Key, tuple[Key, Path]] = {}  # object-delta channel -> its place
        self._by_delta = dict(_BY_DELTA)  # and kinds learnt from unknown ``*.delta`` events
        self._by_done: dict[str, TextKind] = {}
        self._handlers: dict[str, Callable[[dict[str, Any], str | None], None]] = {
            "response.output_item.added": self._item_added,
            "response.output_item.done": self._item_done,
            "response.output_text.annotation.added": self._annotation_added,
        }
        for name in _BY_DELTA:
            self._handlers[name] = self._delta
        for name in _BY_DONE:
            self._handlers[name] = self._text_done
        for name in _PART_ADDED:
            self._handlers[name] = self._part_added
        for name in _PART_DONE:
            self._handlers[name] = self._part_done
        for name in _LIFECYCLE:
            self._handlers[name] = self._lifecycle
        for name in _TERMINAL:
            self._handlers[name] = self._terminal_event

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def held(self) -> int:
        return sum(ch.held for ch in self._texts.channels.values())

    def on_event(self, data: str, event: str | None) -> Moderated:
        try:
            return self._moderated(self._event(data, event))
        except BudgetExceeded as exc:
            return self._moderated(self._fail(exc.code, str(exc), "server_error"))

    def on_eof(self) -> Moderated:
        if self._finished:
            return Moderated([])
        if self._terminal:
            self._finished = True
            return Moderated([])
        return self._moderated(
            self._fail("upstream_incomplete", "Upstream ended before the response did.")
        )

    def on_upstream_error(self, message: str) -> Moderated:
        if self._finished:
            return Moderated([])
        if self._terminal:
            self._finished = True
            return Moderated([])
        return self._moderated(
            self._fail("upstream_error", message or "The connection to the upstream API failed.")
        )

    def _moderated(self, events: list[OutEvent]) -> Moderated:
        return Moderated(events, self._texts.take_hits())

    def _event(self, data: str, event: str | None) -> list[OutEvent]:
        if self._finished:
            return []
        self._out = []
        if data.startswith("[DONE]"):
            if not self._terminal:
                return self._fail("upstream_incomplete", "Upstream ended before the response did.")
            self._finished = True
            return [OutEvent("[DONE]")]
        try:
            parsed = load_event(data)
        except orjson.JSONDecodeError:
            return self._fail(
                "upstream_malformed_event", "Upstream sent an event that is not JSON."
            )
        if not isinstance(parsed, dict):
            return self._fail("upstream_malformed_event", "Upstream sent an unexpected event.")
        if self._seq is None and isinstance(parsed.get("sequence_number"), int):
            self._seq = parsed["sequence_number"]
        try:
            self._dispatch(parsed, event)
        except ResponseCut:
            self._end_cut()
        return self._out

    # -- dispatch ----------------------------------------------------------------------

    def _dispatch(self, event: dict[str, Any], name: str | None) -> None:
        kind = event.get("type")
        if kind == "error":
            self._discard()
            self._finished = True
            self._emit(event, name)
            return
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None and isinstance(kind, str) and kind.endswith(".delta"):
            handler = self._learn(kind, event)
        if handler is None and isinstance(kind, str) and kind.endswith(".added"):
            handler = self._learn_start(kind, event)
        if handler is None:
            self._emit(event, name)  # an unknown event: every member moderated whole
        else:
            handler(event, name)

    def _learn(self, delta: str, event: dict[str, Any]) -> Callable[..., None] | None:
        """An unknown ``X.delta`` event streams text: a channel per item (and part) for it,
        so its deltas concatenate; its ``X.done`` finishes the channel, then is moderated
        whole like any unknown event (the same rules on the same text agree)."""
        if not isinstance(event.get("delta"), str | dict):
            return None
        stem = delta.removesuffix(".delta")
        index = next(  # the part, the command ...: whatever besides the item it streams into
            (
                f
                for f, v in event.items()
                if f.endswith("_index") and f != "output_index" and type(v) is int
            ),
            None,
        )
        self._texts.tally.open()  # upstream names the kinds: each learnt one is a record
        kind = TextKind(f"{UNKNOWN}:{stem}", index, None, False, delta, f"{stem}.done")
        self._by_delta[delta] = self._by_done[kind.done] = kind
        self._handlers[delta] = self._delta
        self._handlers[kind.done] = self._unknown_done
        return self._delta

    def _learn_start(self, added: str, event: dict[str, Any]) -> Callable[..., None] | None:
        """An unknown ``X.added`` with one text member starts what ``X.delta`` continues
        (``shell_call_command.added`` carries the command's first piece): that text is
        fed to the deltas' channel, so a key split between the two is still joined."""
        texts = [k for k, v in event.items() if isinstance(v, str) and k not in STRUCTURAL]
        if len(texts) != 1:
            return None
        stem = added.removesuffix(".added")
        learnt = self._learn(f"{stem}.delta", {**event, "delta": ""})
        if learnt is None:
            return None
        kind, member = self._by_delta[f"{stem}.delta"], texts[0]

        def start(event: dict[str, Any], name: str | None) -> None:
            text = event.get(member)
            if isinstance(text, str):
                channel = self._texts.channel(_key(event, kind))
                event[member] = channel.feed(text)
                self._texts.note(channel)
            self._emit(event, name, frozenset({member}))

        self._handlers[added] = start
        return start

    def _unknown_done(self, event: dict[str, Any], name: str | None) -> None:
        o, slot, i = _key(event, self._by_done[event["type"]])
        self._texts.finish_where(lambda k: k[0] == o and k[2] == i and k[1].startswith(slot))
        self._emit(event, name)

    def _object_delta(self, event: dict[str, Any], name: str | None, kind: TextKind) -> None:
        """A learnt delta whose text sits in an object (``{"stdout": ...}``): a channel per
        path inside it, so each member's deltas concatenate like a string delta's."""
        key = _key(event, kind)
        self._deltas[key] = (dict(event), kind, name)

        def feed(path: Path, text: str) -> str:
            sub = (key[0], f"{key[1]}:{orjson.dumps(path).decode()}", key[2])
            self._parts[sub] = (key, path)
            channel = self._texts.channel(sub)
            out = channel.feed(text)
            self._texts.note(channel)
            return out

        unknown = Unknown(self._texts.config, f"output.{UNKNOWN}", feed)
        event["delta"] = unknown.value(event["delta"])
        self._emit(event, name, _DELTA_OWN)

    def _emit(
        self, event: dict[str, Any], name: str | None = None, own: frozenset[str] = frozenset()
    ) -> None:
        """Send an event; every member the handler did not rewrite (``own``) is moderated
        whole first, so nothing upstream adds to an event goes out unchecked."""
        self._texts.members(event, own, True)
        if "sequence_number" in event:
            seq = self._seq if self._seq is not None else 0
            event["sequence_number"] = seq
            self._seq = seq + 1
        kind = event.get("type")
        label = name if name is not None else kind if isinstance(kind, str) else None
        self._out.append(OutEvent(orjson.dumps(event).decode(), label))

    # -- text events -------------------------------------------------------------------

    def _delta(self, event: dict[str, Any], name: str | None) -> None:
        kind = self._by_delta[event["type"]]
        text = event.get("delta")
        if isinstance(text, dict) and kind.slot.startswith(UNKNOWN):
            self._object_delta(event, name, kind)
            return
        if not isinstance(text, str):
            self._emit(event, name)
            return
        key = _key(event, kind)
        channel = self._texts.channel(key, kind.json)
        self._deltas[key] = (dict(event), kind, name)
        out = channel.feed(text)
        if kind.json and self._texts.config.whole_tool_calls:
            # Tool arguments leave whole, in one delta just before their done event: a
            # cut must not leave an agent holding a truncated call (docs/wire.md).
            self._whole[key] = self._whole.get(key, "") + out
            self._texts.note(channel)
            return
        entries = event.get("logprobs")
        if isinstance(entries, list):
            channel.add_logprobs(entries)
            event["logprobs"] = [e for _, e in channel.take_logprobs()]
        event["delta"] = out
        if out or event.get("logprobs") or not text:
            self._emit(event, name, _DELTA_OWN)
        self._release_annotations(key)
        self._texts.note(channel)

    def _flushed(self, key: Key, channel: Channel, out: str) -> None:
        """A channel finished because an echo needs its text: send what it released."""
        entries = [e for _, e in channel.take_logprobs()]
        if key in self._whole:
            out = "" if channel.cut else self._whole.pop(key) + out
        if key in self._parts and out:
            # Held text of an object delta goes out in its last delta's frame.
            parent, path = self._parts[key]
            event, _, name = self._deltas[parent]
            delta = blank(event.get("delta"))
            place(delta, path, out)
            self._emit(dict(event, delta=delta), name, _DELTA_OWN)
            return
        template = self._deltas.get(key)
        if template is not None and (out or entries):
            event, _, name = template
            event = dict(event, delta=out)
            if "logprobs" in event:
                event["logprobs"] = entries
            self._emit(event, name, _DELTA_OWN)
        self._release_annotations(key)

    def _text_done(self, event: dict[str, Any], name: str | None) -> None:
        kind = _BY_DONE[event["type"]]
        key = _key(event, kind)
        value = event.get(kind.text_field) if kind.text_field else None
        channel = self._texts.text(key, value if isinstance(value, str) else "", True, kind.json)
        if kind.text_field is not None and isinstance(value, str):
            event[kind.text_field] = channel.text
        entries = event.get("logprobs")
        if isinstance(entries, list):
            event["logprobs"] = self._texts.logprobs(channel, entries)
        item = self._items.get(key[0])
        if item is not None:
            item.texts_done.add(key[1:])
        self._emit(event, name, frozenset({kind.text_field or "", "logprobs"}))

    def _annotation_added(self, event: dict[str, Any], name: str | None) -> None:
        o, i = event.get("output_index", -1), event.get("content_index", 0)
        key = (o if isinstance(o, int) else -1, "content", i if isinstance(i, int) else 0)
        self._texts.tally.hold(1)
        self._annotations.setdefault(key, []).append((event, name))
        self._release_annotations(key)

    def _release_annotations(self, key: Key) -> None:
        """Send waiting annotations once the text they point into is released."""
        waiting = self._annotations.get(key)
        channel = self._texts.channels.get(key)
        while waiting and channel is not None:
            event, name = waiting[0]
            if _reach(event.get("annotation")) > channel.released and not channel.done:
                return
            waiting.pop(0)
            self._texts.tally.hold(-1)
            annotation = self._texts.annotation(channel, event.get("annotation"))
            if annotation is None:
                continue
            count = self._annotation_count.get(key, 0)
            self._annotation_count[key] = count + 1
            event["annotation"] = annotation
            if "annotation_index" in event:
                event["annotation_index"] = count
            self._emit(event, name, frozenset({"annotation"}))

    # -- parts and items ---------------------------------------------------------------

    def _part_added(self, event: dict[str, Any], name: str | None) -> None:
        slot = _PART_ADDED[event["type"]]
        o, i, part = _part_of(event, slot)
        item = self._items.get(o)
        if part is None:
            event["part"] = self._texts.other(event.get("part"), ("part",), False)
        else:
            if item is not None:
                if (slot, i) not in item.parts:
                    self._texts.tally.open()
                item.parts[(slot, i)] = _copy(part)
            self._texts.part(o, slot, i, part, False)
        self._emit(event, name, _PART_EVENT_OWN)

    def _part_done(self, event: dict[str, Any], name: str | None) -> None:
        slot = _PART_DONE[event["type"]]
        o, i, part = _part_of(event, slot)
        self._texts.finish_where(lambda k: k == (o, slot, i))
        if part is not None:
            self._texts.part(o, slot, i, part, True)
        else:
            event["part"] = self._texts.other(event.get("part"), ("part",), True)
        item = self._items.get(o)
        if item is not None:
            if part is not None:
                item.parts[(slot, i)] = part
            item.parts_done.add((slot, i))
        self._emit(event, name, _PART_EVENT_OWN)

    def _item_added(self, event: dict[str, Any], name: str | None) -> None:
        o, item = event.get("output_index"), event.get("item")
        if isinstance(o, int) and isinstance(item, dict):
            if o not in self._items:
                self._texts.tally.open()
            self._items[o] = _Item(_copy(item))
            self._texts.item(o, item, False)
        else:  # an item that cannot be tracked: its structure only, until it is done
            event["item"] = self._texts.other(item, ("item",), False)
        self._emit(event, name, _ITEM_EVENT_OWN)

    def _item_done(self, event: dict[str, Any], name: str | None) -> None:
        o, item = event.get("output_index"), event.get("item")
        if isinstance(o, int):
            self._texts.finish_where(lambda k: k[0] == o)
        if isinstance(o, int) and isinstance(item, dict):
            self._texts.item(o, item, True)
            if o not in self._items:
                self._texts.tally.open()
            state = self._items.setdefault(o, _Item(item))
            state.item, state.done = item, True
        else:
            event["item"] = self._texts.other(item, ("item",), True)
        self._emit(event, name, _ITEM_EVENT_OWN)

    # -- lifecycle ---------------------------------------------------------------------

    def _lifecycle(self, event: dict[str, Any], name: str | None) -> None:
        response = event.get("response")
        if isinstance(response, dict):
            self._texts.output(response, False)
            self._response = response
            self._emit(event, name, _RESPONSE_EVENT_OWN)
        else:
            self._emit(event, name)

    def _terminal_event(self, event: dict[str, Any], name: str | None) -> None:
        self._texts.finish_where(lambda k: True)
        response = event.get("response")
        self._terminal = True
        if isinstance(response, dict):
            self._texts.output(response, True)
            self._response = response
            self._emit(event, name, _RESPONSE_EVENT_OWN)
        else:
            self._emit(event, name)

    # -- ends --------------------------------------------------------------------------

    def _end_cut(self) -> None:
        """Close every open part and item with what was released, then the response."""
        self._texts.strict = False
        for o in sorted(self._items):
            if not self._items[o].done:
                self._close_item(o)
        response = dict(self._response or {"object": "response"})
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "content_filter"}
        response["output"] = [self._items[o].item for o in sorted(self._items)]
        if "output_text" in response:
            response["output_text"] = _output_text(response["output"])
        self._emit({"type": "response.incomplete", "sequence_number": 0, "response": response})
        self._finished = True

    def _close_item(self, o: int) -> None:
        state = self._items[o]
        self._texts.finish_where(lambda k: k[0] == o)
        item = dict(state.item)
        item_id = item.get("id")
        for slot in _PART_SLOTS:
            parts = self._closed_parts(o, slot, state, item_id)
            if parts:
                item[slot] = parts
        self._texts.item_field(o, item, True)
        kind = _ITEM_KINDS.get(_type(item))
        if kind is not None and kind.text_field and (kind.slot, 0) not in state.texts_done:
            text = item.get(kind.text_field)
            self._emit(_text_done_event(kind, o, item_id, 0, text, None))
        item["status"] = "incomplete"
        state.item, state.done = item, True
        self._emit(
            {
                "type": "response.output_item.done",
                "sequence_number": 0,
                "output_index": o,
                "item": item,
            }
        )

    def _closed_parts(self, o: int, slot: str, state: _Item, item_id: Any) -> list[dict[str, Any]]:
        """Every part of ``slot``, closed with done events where still open."""
        indexes = {i for s, i in state.parts if s == slot}
        indexes |= {k[2] for k in self._texts.channels if k[0] == o and k[1] == slot}
        parts = []
        for i in sorted(indexes):
            part = state.parts.get((slot, i)) or self._bare_part(o, slot, i)
            if (slot, i) not in state.parts_done:
                self._close_part(o, slot, i, part, state, item_id)
            parts.append(part)
        return parts

    def _bare_part(self, o: int, slot: str, i: int) -> dict[str, Any]:
        """A part for text whose ``part.added`` never came: typed after its deltas."""
        template = self._deltas.get((o, slot, i))
        kind = template[1] if template is not None else _PART_KINDS["output_text"]
        part: dict[str, Any] = {"type": kind.part_type, kind.text_field or "text": ""}
        if kind.part_type == "output_text":
            part["annotations"] = []
        return part

    def _close_part(
        self, o: int, slot: str, i: int, part: dict[str, Any], state: _Item, item_id: Any
    ) -> None:
        self._texts.part(o, slot, i, part, True)
        kind = _PART_KINDS.get(_type(part))
        if kind is not None and kind.text_field and (slot, i) not in state.texts_done:
            logprobs = part.get("logprobs") if kind.part_type == "output_text" else None
            text = part.get(kind.text_field)
            self._emit(_text_done_event(kind, o, item_id, i, text, logprobs))
        done = {"type": _DONE_OF_SLOT[slot], "sequence_number": 0, "item_id": item_id}
        done |= {"output_index": o, _PART_SLOTS[slot]: i, "part": part}
        self._emit(done)
        state.parts[(slot, i)] = part
        state.parts_done.add((slot, i))

    def _fail(self, code: str, message: str, type_: str = "upstream_error") -> list[OutEvent]:
        """End so that both SDKs raise: a flat ``error`` event with the nested form too.

        Events built for the current upstream event are dropped with the held text."""
        self._discard()
        self._finished = True
        self._out = []
        nested = {"type": type_, "code": code, "message": message, "param": None}
        error: dict[str, Any] = {"type": "error", "code": code, "message": message, "param": None}
        error |= {"sequence_number": 0, "error": nested}
        self._emit(error, "error", frozenset(error))  # the gateway's own words: not scanned
        return self._out

    def _discard(self) -> None:
        for channel in self._texts.channels.values():
            channel.discard()


def _text_done_event(
    kind: TextKind, o: int, item_id: Any, i: int, text: Any, logprobs: Any
) -> dict[str, Any]:
    event: dict[str, Any] = {"type": kind.done, "sequence_number": 0, "item_id": item_id}
    event["output_index"] = o
    if kind.index_field is not None:
        event[kind.index_field] = i
    if kind.text_field is not None:
        event[kind.text_field] = text
    if kind.part_type == "output_text":
        event["logprobs"] = logprobs if isinstance(logprobs, list) else []
    return event


def _part_of(event: dict[str, Any], slot: str) -> tuple[int, int, dict[str, Any] | None]:
    o, i, part = event.get("output_index"), event.get(_PART_SLOTS[slot]), event.get("part")
    return (
        o if isinstance(o, int) else -1,
        i if isinstance(i, int) else 0,
        part if isinstance(part, dict) else None,
    )


def _reach(annotation: Any) -> int:
    """How far into the text an annotation points."""
    if not isinstance(annotation, dict):
        return 0
    values = [annotation.get("end_index"), annotation.get("index")]
    return max((v for v in values if isinstance(v, int)), default=0)


def stream(body: dict[str, Any], config: SluiceConfig, taps: Taps | None = None) -> StreamModerator:
    return ResponsesStream(body, config, taps)


# -- non-streaming ---------------------------------------------------------------------


def moderate_response(
    body: dict[str, Any], config: SluiceConfig, taps: Taps | None = None
) -> ModeratedBody:
    """Moderate a ``response`` body in place, exactly as its stream would be."""
    texts = ResponseTexts(config, taps=taps)
    texts.output(body, True)
    if texts.cut:
        body["status"] = "incomplete"
        body["incomplete_details"] = {"reason": "content_filter"}
    return ModeratedBody(body, texts.take_hits())


# -- request ---------------------------------------------------------------------------


def request_fields(body: dict[str, Any]) -> Iterator[TextField]:
    """Every text a Responses request sends upstream: each string and member name but
    the structural ones (``request_shapes.RESPONSES``), and what it cannot read."""
    return RESPONSES_TEXT(body)


ADAPTER = ApiAdapter(
    route=ROUTE,
    request_fields=RESPONSES_TEXT,
    moderate_response=moderate_response,
    stream=stream,
)
