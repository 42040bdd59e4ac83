"""Chat Completions (``/v1/chat/completions``): where its chunks and bodies carry text.

A choice's text travels in ``delta``: ``content``, ``refusal``, the ``reasoning_content``/
``reasoning`` of compatible servers, ``audio.transcript``, and JSON in
``tool_calls[].function.arguments`` and the legacy ``function_call.arguments``. Each is
its own channel. Everything else is default deny (``unknown``): another member of the
delta is a channel per JSON path, so a secret split across events in OpenRouter's
``reasoning_details[].text`` is caught like one in ``content``; every other member of a
chunk, an entry or a body is moderated whole where it stands, structural values (ids,
roles, finish reasons, model names) by shape. Nothing goes out as upstream's bytes: each
chunk is rebuilt from its parse.

What the SDKs need from a rewritten stream (docs/wire.md, "Chat chunk requirements") decides
what may be dropped: a choice's first entry always goes out, even with all its text held, so
``role`` and the choice indexes arrive in upstream's order; so does a tool call's first entry,
so its ``id`` and ``name`` go out exactly once. Any later entry whose text is all held is
dropped, and a chunk left with no entries with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from gateway.adapters.base import ApiAdapter, ChannelHit, ModeratedBody, StreamModerator, TextField
from gateway.adapters.choices import ChoiceState, ChoiceStream, Path, append_text, is_empty
from gateway.adapters.logprobs import TOKEN_ENTRIES
from gateway.adapters.request_shapes import CHAT_TEXT
from gateway.adapters.unknown import (
    UNKNOWN,
    Unknown,
    carries_text,
    is_clean,
    key_is_safe,
    place,
)
from gateway.sluice import SluiceConfig
from gateway.sluice.budget import Tally
from gateway.sluice.classify import Taps

ROUTE = "/v1/chat/completions"

#: Delta and message members that are text channels of their own name.
_TEXT = frozenset({"content", "refusal", "reasoning_content", "reasoning"})
#: Objects in ``delta``/``message`` whose string fields are channels: field -> is JSON.
_OBJECT_TEXT: dict[str, dict[str, bool]] = {
    "function_call": {"arguments": True},
    "audio": {"transcript": False},
}
_TOOL_TEXT: dict[str, dict[str, bool]] = {
    "function": {"arguments": True},
    "custom": {"input": False},
}
_ROLES = frozenset({"assistant", "tool", "function", "system", "developer", "user"})
#: Tool-call members a client reads once: repeated, the SDK would concatenate them.
_ONCE = frozenset({"id", "name"})
#: Entry members passed on here and rebuilt later (``index`` is checked by
#: ``ChoiceStream``, ``logprobs`` by ``_put_logprobs``).
_ENTRY_OWN = frozenset({"index", "logprobs"})


class ChatShape:
    """Rewrites ``choices[]`` entries of ``chat.completion.chunk`` events."""

    def rewrite(
        self, choice: ChoiceState, entry: dict[str, Any], first: bool
    ) -> dict[str, Any] | None:
        if choice.ended:
            # After its end a choice may still get text-free entries (e.g. filter results).
            if choice.cut or carries_text(entry):
                return None
            out: dict[str, Any] = choice.unknown_whole(entry)
            return out
        out = {}
        carried = False
        for key, value in entry.items():
            if not key_is_safe(choice.config, key):
                carried |= carries_text(value)
            elif key == "delta" and isinstance(value, dict):
                out[key], carried = _delta(choice, value)
            elif key == "delta":  # not an object: nothing of it goes out
                out[key], carried = {}, carries_text(value)
            elif key in _ENTRY_OWN:
                out[key] = value
            else:
                out[key] = choice.unknown_whole(value, (key,))
        _add_logprobs(choice, entry.get("logprobs"))
        if entry.get("finish_reason") is not None or choice.cut:
            _finish(choice, out)
        if choice.cut:
            out["finish_reason"] = "content_filter"
        _put_logprobs(choice, out)
        if carried and not first and is_empty(out):
            return None
        return out

    def close(self, choice: ChoiceState) -> dict[str, Any] | None:
        out: dict[str, Any] = {"index": choice.index, "delta": {}}
        _finish(choice, out)
        out["logprobs"] = None
        _put_logprobs(choice, out)
        out["finish_reason"] = "content_filter" if choice.cut else None
        return None if is_empty(out) else out


# -- streaming -------------------------------------------------------------------------


def _delta(choice: ChoiceState, delta: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    out: dict[str, Any] = {}
    carried = False
    for key, value in delta.items():
        carried |= carries_text(value, key)
        if not key_is_safe(choice.config, key):
            continue
        if key == "tool_calls" and isinstance(value, list):
            calls = _tool_calls(choice, value)
            if calls or not value:
                out[key] = calls
            carried |= bool(value)  # held whole, a call's deltas still carried it
        elif key in _OBJECT_TEXT and isinstance(value, dict):
            out[key] = _text_object(choice, (key,), value, _OBJECT_TEXT[key])
        elif key in _TEXT and isinstance(value, str):
            out[key] = choice.feed((key,), value)
        elif key == "role":
            if isinstance(value, str) and value in _ROLES:  # clients concatenate roles
                out[key] = value
        else:
            out[key] = choice.unknown_delta(key, value)
    return out, carried


def _text_object(
    choice: ChoiceState,
    path: Path,
    value: dict[str, Any],
    fields: dict[str, bool],
    once: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Known text fields are channels; the object's other members are moderated whole.

    A member in ``once`` (a call's ``name``) goes out only from the first delta that
    carries it: a client concatenates strings it meets again, so pieces judged apart
    would join into what no check saw.
    """
    out: dict[str, Any] = {}
    for name, item in value.items():
        if name in fields and isinstance(item, str):
            out[name] = choice.feed((*path, name), item, json=fields[name])
        elif (name in once and (*path, name) in choice.sent) or not key_is_safe(
            choice.config, name
        ):
            continue
        elif name in once or name == "type" or not isinstance(item, str):
            out[name] = choice.unknown_whole(item, (name,))
            if name in once:
                choice.sent.add((*path, name))
        else:
            # A client joins every other string of a delta (``audio.data``, an id): a
            # channel of its own, so pieces judged apart cannot join into a key.
            out[name] = choice.feed((*path, name), item)
    return out


def _tool_calls(choice: ChoiceState, calls: list[Any]) -> list[Any]:
    """Moderate tool-call deltas; a new tool index finishes the ones before it.

    With ``whole_tool_calls`` (the default) nothing of a call goes out until it is
    complete: programs, not people, read arguments, and a cut inside them would leave an
    agent holding a truncated call that still parses (LangChain's partial-JSON parser,
    the Agents SDK). The call's deltas are held as they came, and the complete call is
    moderated and sent as one entry; one a block fires in is withdrawn whole, and the
    choice ends ``content_filter``.
    """
    out: list[Any] = []
    for call in calls:
        index = call.get("index") if isinstance(call, dict) else None
        if not isinstance(index, int) or isinstance(index, bool):
            continue  # no index, no channel: it could not be moderated, so it never leaves
        first = index not in choice.tools
        if first:
            _complete_calls(choice, out, _other_tool(index))
            if choice.cut:
                break
            choice.tally.open()  # upstream picks the indexes: each new one is a record
            choice.tools.add(index)
        if choice.config.whole_tool_calls:
            _hold_call(choice.calls.setdefault(index, {}), call)
            continue
        rewritten = _rewrite_call(choice, index, call)
        if first or not is_empty(rewritten):
            out.append(rewritten)
    return out


def _rewrite_call(choice: ChoiceState, index: int, call: dict[str, Any]) -> dict[str, Any]:
    rewritten: dict[str, Any] = {}
    for key, value in call.items():
        path = ("tool_calls", index, key)
        if key in _TOOL_TEXT and isinstance(value, dict):
            rewritten[key] = _text_object(choice, path, value, _TOOL_TEXT[key], _ONCE)
        elif key == "index":
            rewritten[key] = index
        elif (key in _ONCE and path in choice.sent) or not key_is_safe(choice.config, key):
            continue
        elif key in _ONCE or key == "type" or not isinstance(value, str):
            rewritten[key] = choice.unknown_whole(value, (key,))
            if key in _ONCE:
                choice.sent.add(path)
        else:
            rewritten[key] = choice.feed(path, value)  # joined by clients: a channel
    return rewritten


def _hold_call(held: dict[str, Any], delta: dict[str, Any]) -> None:
    """Add a call's delta to what is held of it: strings concatenate, the rest is kept."""
    for key, value in delta.items():
        previous = held.get(key)
        if isinstance(value, dict):
            if not isinstance(previous, dict):
                previous = held[key] = {}
            _hold_call(previous, value)
        elif isinstance(value, str) and isinstance(previous, str):
            held[key] = previous + value
        elif previous is None:
            held[key] = value


def _complete_calls(
    choice: ChoiceState, out: list[Any], only: Callable[[Path], bool] | None = None
) -> None:
    """Finish the tool calls ``only`` picks (all by default) and send what they release:
    a streamed call its rest, a whole call itself, unless a block withdrew it (a block
    in it or before it: nothing after the start of a match goes out)."""
    for index in sorted(i for i in choice.tools if only is None or only(("tool_calls", i))):
        held = choice.calls.pop(index, None)
        call = None if held is None or choice.cut else _rewrite_call(choice, index, held)
        for path, text in choice.finish(_this_tool(index)):
            if call is not None:
                place(call, path[2:], text)
            elif not choice.config.whole_tool_calls:
                _merge_tool(out, path, text)
        if call is not None and not choice.cut:
            out.append(call)


def _this_tool(index: int) -> Callable[[Path], bool]:
    return lambda path: path[:2] == ("tool_calls", index)


def _other_tool(index: int) -> Callable[[Path], bool]:
    return lambda path: path[0] == "tool_calls" and path[1] != index


def _finish(choice: ChoiceState, entry: dict[str, Any]) -> None:
    """End the choice: release what its channels hold into this entry's delta."""
    delta = entry.get("delta")
    if not isinstance(delta, dict):
        delta = entry["delta"] = {}
    for path, text in choice.finish(lambda path: path[0] != "tool_calls"):
        _merge(choice, delta, path, text)
    calls = delta.get("tool_calls")
    finished: list[Any] = calls if isinstance(calls, list) else []
    _complete_calls(choice, finished)
    if finished:
        delta["tool_calls"] = finished
    choice.ended = True


def _merge(choice: ChoiceState, delta: dict[str, Any], path: Path, text: str) -> None:
    """Append released text at ``path`` in a delta, creating what is missing."""
    if path[0] == "tool_calls":
        calls = delta.get("tool_calls")
        if not isinstance(calls, list):
            calls = delta["tool_calls"] = []
        _merge_tool(calls, path, text)
    elif path[0] == UNKNOWN:
        choice.release_unknown(delta, path, text)
    else:
        append_text(delta, path, text)


def _merge_tool(calls: list[Any], path: Path, text: str) -> None:
    index = path[1]
    for call in calls:
        if isinstance(call, dict) and call.get("index") == index:
            append_text(call, path[2:], text)
            return
    call = {"index": index}
    append_text(call, path[2:], text)
    calls.append(call)


def _add_logprobs(choice: ChoiceState, logprobs: Any) -> None:
    if isinstance(logprobs, dict):
        for key, entries in logprobs.items():
            if key in _TEXT and isinstance(entries, list):
                choice.channel((key,)).add_logprobs(entries)


def _put_logprobs(choice: ChoiceState, entry: dict[str, Any]) -> None:
    """Set the entry's logprobs to exactly the entries whose text it releases.

    Entries are only ever those placed on a channel's text; upstream's other members of
    ``logprobs`` are moderated whole, and anything that is not an object is dropped.
    """
    taken: dict[str, list[Any]] = {}
    for path, channel in choice.channels.items():
        if len(path) == 1 and path[0] in _TEXT:
            entries = [e for _, e in channel.take_logprobs()]
            if entries:
                taken[str(path[0])] = entries
    upstream = entry.get("logprobs")
    if isinstance(upstream, dict):
        out: dict[str, Any] = {}
        for key, value in upstream.items():
            if key in _TEXT and (isinstance(value, list) or key in taken):
                out[key] = taken.pop(key, [])
            elif isinstance(value, list):
                out[key] = []  # entries with no channel to place them on cannot be checked
            elif key_is_safe(choice.config, key):
                out[key] = choice.unknown_whole(value, (key,))
        out.update(taken)
        entry["logprobs"] = out
    elif taken:
        entry["logprobs"] = taken
    elif "logprobs" in entry:
        entry["logprobs"] = None


def stream(body: dict[str, Any], config: SluiceConfig, taps: Taps | None = None) -> StreamModerator:
    return ChoiceStream(ChatShape(), body, config, taps)


# -- non-streaming ---------------------------------------------------------------------


def moderate_response(
    body: dict[str, Any], config: SluiceConfig, taps: Taps | None = None
) -> ModeratedBody:
    """Moderate a ``chat.completion`` body in place, exactly as its stream would be.

    A stream carries a message's fields in the order string fields, audio transcript,
    ``function_call``, ``tool_calls``; a cut in one ends the choice there, so the fields
    after it are dropped (``None``; tool calls after the cut one are removed). Members
    no adapter knows are moderated too: in the message as channels of their own, around
    it (the body, the choice) whole, where they stand.
    """
    envelope = Unknown(config, "envelope")
    out: dict[str, Any] = {}
    hits: list[ChannelHit] = []
    tally = Tally()
    for key, value in body.items():
        if key == "choices" and isinstance(value, list):
            out[key] = value
            for position, choice in enumerate(value):
                if isinstance(choice, dict):
                    value[position] = _moderate_choice(choice, position, config, hits, tally, taps)
        elif envelope.member(key):
            out[key] = envelope.value(value, (key,))
    hits.extend(envelope.hits)
    return ModeratedBody(out, tuple(hits))


def _moderate_choice(
    choice: dict[str, Any],
    position: int,
    config: SluiceConfig,
    hits: list[ChannelHit],
    tally: Tally,
    taps: Taps | None,
) -> dict[str, Any]:
    index = choice.get("index", position)
    tally.open()
    state = ChoiceState(index if isinstance(index, int) else position, config, tally, taps)
    message = choice.get("message")
    if isinstance(message, dict):
        _moderate_message(state, message)
    _whole_logprobs(state, choice)
    out: dict[str, Any] = {}
    for key, value in choice.items():
        if key in ("index", "message", "logprobs"):
            out[key] = value
        elif key_is_safe(config, key):
            out[key] = state.unknown_whole(value, (key,))
    if state.cut:
        out["finish_reason"] = "content_filter"
    hits.extend(state.take_hits())
    return out


def _moderate_message(state: ChoiceState, message: dict[str, Any]) -> None:
    for key, value in list(message.items()):
        if not key_is_safe(state.config, key):
            del message[key]
        elif key in _TEXT and isinstance(value, str):
            message[key] = state.whole((key,), value)
        elif key == "role":
            message[key] = state.unknown_whole(value, (key,))
        elif key not in _OBJECT_TEXT and key not in ("tool_calls", "annotations"):
            message[key] = _unknown_field(state, key, value)
    for key, fields in _OBJECT_TEXT.items():
        value = message.get(key)
        if isinstance(value, dict):
            message[key] = _whole_object(state, (key,), value, fields)
        elif key in message:
            message[key] = _unknown_field(state, key, value)
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        message["tool_calls"] = _whole_tool_calls(state, calls)
    elif "tool_calls" in message:
        message["tool_calls"] = _unknown_field(state, "tool_calls", calls)
    annotations = message.get("annotations")
    if isinstance(annotations, list):
        message["annotations"] = _annotations(state, annotations)
    elif "annotations" in message:
        message["annotations"] = _unknown_field(state, "annotations", annotations)


def _unknown_field(state: ChoiceState, key: str, value: Any) -> Any:
    """A message member no adapter knows: each string a channel, as in a stream's delta."""
    if state.cut:
        return None

    def whole(path: Path, text: str) -> str:
        return state.whole((UNKNOWN, key, *path), text) or ""

    return Unknown(state.config, "", whole).value(value)


def _whole_object(
    state: ChoiceState, path: Path, value: dict[str, Any], fields: dict[str, bool]
) -> dict[str, Any] | None:
    if state.cut:
        return None
    out: dict[str, Any] = {}
    for name, item in value.items():
        if name in fields and isinstance(item, str):
            out[name] = state.whole((*path, name), item, json=fields[name])
        elif key_is_safe(state.config, name):
            out[name] = state.unknown_whole(item, (name,))
    return out


def _whole_tool_calls(state: ChoiceState, calls: list[Any]) -> list[Any] | None:
    kept: list[Any] = []
    for position, call in enumerate(calls):
        if state.cut:
            break
        if not isinstance(call, dict):
            continue
        out: dict[str, Any] = {}
        for key, value in call.items():
            if key in _TOOL_TEXT and isinstance(value, dict):
                path = ("tool_calls", position, key)
                out[key] = _whole_object(state, path, value, _TOOL_TEXT[key])
            elif key_is_safe(state.config, key):
                out[key] = state.unknown_whole(value, (key,))
        if state.cut and state.config.whole_tool_calls:
            break  # the call a block fired in is withdrawn whole, as in a stream
        kept.append(out)
    return kept or None


def _whole_logprobs(state: ChoiceState, choice: dict[str, Any]) -> None:
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict):
        out: dict[str, Any] = {}
        for key, entries in logprobs.items():
            if key in _TEXT and isinstance(entries, list):
                kept = state.whole_logprobs((key,), entries, TOKEN_ENTRIES)
                out[key] = [entry for _, entry in kept]
            elif isinstance(entries, list):
                out[key] = []
            elif key_is_safe(state.config, key):
                out[key] = state.unknown_whole(entries, (key,))
        choice["logprobs"] = out
    elif logprobs is not None:
        choice["logprobs"] = None


def _annotations(state: ChoiceState, annotations: list[Any]) -> list[Any]:
    """Keep url citations on the characters they cite, or drop them (docs/wire.md); any
    other annotation is moderated whole."""
    channel = state.channels.get(("content",))
    kept = []
    for annotation in annotations:
        citation = annotation.get("url_citation") if isinstance(annotation, dict) else None
        if not isinstance(citation, dict):
            kept.append(state.unknown_whole(annotation))
            continue
        start, end = citation.get("start_index"), citation.get("end_index")
        if channel is None or not isinstance(start, int) or not isinstance(end, int):
            continue
        span = channel.map_span(start, end)
        if span is None or not _clean_citation(state, citation):
            continue
        citation = state.unknown_whole(citation)
        citation["start_index"], citation["end_index"] = span
        kept.append({**state.unknown_whole(annotation), "url_citation": citation})
    return kept


def _clean_citation(state: ChoiceState, citation: dict[str, Any]) -> bool:
    return all(
        is_clean(state.config, v)
        for k, v in citation.items()
        if k in ("title", "url") and isinstance(v, str)
    )


# -- request ---------------------------------------------------------------------------


def request_fields(body: dict[str, Any]) -> Iterator[TextField]:
    """Every text a chat request sends upstream: each string and member name but the
    structural ones (``request_shapes.CHAT``), and the token ids it cannot read."""
    return CHAT_TEXT(body)


ADAPTER = ApiAdapter(
    route=ROUTE,
    request_fields=CHAT_TEXT,
    moderate_response=moderate_response,
    stream=stream,
)
