"""Chat Completions (``/v1/chat/completions``): where its chunks and bodies carry text.

A choice's text travels in ``delta``: every string field but ``role`` (``content``,
``refusal``, and the ``reasoning_content``/``reasoning`` of compatible servers; the
Python SDK concatenates any string there, so any is text), ``audio.transcript``, and
JSON in ``tool_calls[].function.arguments`` and the legacy ``function_call.arguments``.
Each is its own channel. Released text is written back into upstream's own chunk, so
every other field, known or not, goes out as it came.

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
from gateway.adapters.channels import is_clean
from gateway.adapters.choices import ChoiceState, ChoiceStream, Path, append_text, is_empty
from gateway.adapters.logprobs import TOKEN_ENTRIES
from gateway.sluice import SluiceConfig

ROUTE = "/v1/chat/completions"

#: Objects in ``delta``/``message`` whose string fields are channels: field -> is JSON.
_OBJECT_TEXT: dict[str, dict[str, bool]] = {
    "function_call": {"arguments": True},
    "audio": {"transcript": False},
}
_TOOL_TEXT: dict[str, dict[str, bool]] = {
    "function": {"arguments": True},
    "custom": {"input": False},
}
_NOT_TEXT = frozenset({"role"})


class ChatShape:
    """Rewrites ``choices[]`` entries of ``chat.completion.chunk`` events."""

    def rewrite(
        self, choice: ChoiceState, entry: dict[str, Any], first: bool
    ) -> dict[str, Any] | None:
        if choice.ended:
            # After its end a choice may still get text-free entries (e.g. filter results).
            return None if choice.cut or _carries_text(entry) else entry
        out: dict[str, Any] = {}
        carried = False
        for key, value in entry.items():
            if key == "delta" and isinstance(value, dict):
                out[key], carried = _delta(choice, value)
            else:
                out[key] = value
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
        if key == "tool_calls" and isinstance(value, list):
            calls = _tool_calls(choice, value)
            if calls or not value:
                out[key] = calls
            carried |= _carries_text(value)
        elif key in _OBJECT_TEXT and isinstance(value, dict):
            out[key] = _text_object(choice, (key,), value, _OBJECT_TEXT[key])
            carried |= _carries_text(value)
        elif key not in _NOT_TEXT and isinstance(value, str):
            out[key] = choice.feed((key,), value)
            carried |= bool(value)
        else:
            out[key] = value
    return out, carried


def _text_object(
    choice: ChoiceState, path: Path, value: dict[str, Any], fields: dict[str, bool]
) -> dict[str, Any]:
    out = dict(value)
    for name, is_json in fields.items():
        text = value.get(name)
        if isinstance(text, str):
            out[name] = choice.feed((*path, name), text, json=is_json)
    return out


def _tool_calls(choice: ChoiceState, calls: list[Any]) -> list[Any]:
    """Moderate tool-call deltas; a new tool index first finishes the ones before it."""
    out: list[Any] = []
    for call in calls:
        index = call.get("index") if isinstance(call, dict) else None
        if not isinstance(index, int) or isinstance(index, bool):
            continue  # no index, no channel: it could not be moderated, so it never leaves
        first = index not in choice.tools
        if first:
            for path, text in choice.finish(_other_tool(index)):
                _merge_tool(out, path, text)
            if choice.cut:
                break
            choice.tools.add(index)
        rewritten = dict(call)
        for key, fields in _TOOL_TEXT.items():
            value = call.get(key)
            if isinstance(value, dict):
                rewritten[key] = _text_object(choice, ("tool_calls", index, key), value, fields)
        if first or not is_empty(rewritten):
            out.append(rewritten)
    return out


def _other_tool(index: int) -> Callable[[Path], bool]:
    return lambda path: path[0] == "tool_calls" and path[1] != index


def _finish(choice: ChoiceState, entry: dict[str, Any]) -> None:
    """End the choice: release what its channels hold into this entry's delta."""
    delta = entry.get("delta")
    if not isinstance(delta, dict):
        delta = entry["delta"] = {}
    for path, text in choice.finish():
        _merge(delta, path, text)
    choice.ended = True


def _merge(delta: dict[str, Any], path: Path, text: str) -> None:
    """Append released text at ``path`` in a delta, creating what is missing."""
    if path[0] == "tool_calls":
        calls = delta.get("tool_calls")
        if not isinstance(calls, list):
            calls = delta["tool_calls"] = []
        _merge_tool(calls, path, text)
        return
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
            if isinstance(entries, list):
                choice.channel((key,)).add_logprobs(entries)


def _put_logprobs(choice: ChoiceState, entry: dict[str, Any]) -> None:
    """Set the entry's logprobs to exactly the entries whose text it releases."""
    taken: dict[str, list[Any]] = {}
    for path, channel in choice.channels.items():
        if len(path) == 1:
            entries = [e for _, e in channel.take_logprobs()]
            if entries:
                taken[str(path[0])] = entries
    upstream = entry.get("logprobs")
    if isinstance(upstream, dict):
        out = {
            k: taken.pop(k, []) if isinstance(v, list) or k in taken else v
            for k, v in upstream.items()
        }
        out.update(taken)
        entry["logprobs"] = out
    elif taken:
        entry["logprobs"] = taken


def _carries_text(value: Any) -> bool:
    """Whether an upstream value has any text at a place this adapter moderates."""
    if isinstance(value, dict):
        delta, logprobs = value.get("delta"), value.get("logprobs")
        if isinstance(logprobs, dict) and any(isinstance(v, list) and v for v in logprobs.values()):
            return True
        if isinstance(delta, dict):
            return _carries_text_delta(delta)
        return any(
            isinstance(value.get(k), dict) and _carries_fields(value[k], f)
            for k, f in (_TOOL_TEXT | _OBJECT_TEXT).items()
        )
    if isinstance(value, list):
        return any(_carries_text(v) for v in value)
    return False


def _carries_text_delta(delta: dict[str, Any]) -> bool:
    for key, value in delta.items():
        if key == "tool_calls" and _carries_text(value):
            return True
        if (
            key in _OBJECT_TEXT
            and isinstance(value, dict)
            and _carries_fields(value, _OBJECT_TEXT[key])
        ):
            return True
        if key not in _NOT_TEXT and isinstance(value, str) and value:
            return True
    return False


def _carries_fields(value: dict[str, Any], fields: dict[str, bool]) -> bool:
    return any(isinstance(value.get(f), str) and value[f] for f in fields)


def stream(body: dict[str, Any], config: SluiceConfig) -> StreamModerator:
    return ChoiceStream(ChatShape(), body, config)


# -- non-streaming ---------------------------------------------------------------------


def moderate_response(body: dict[str, Any], config: SluiceConfig) -> ModeratedBody:
    """Moderate a ``chat.completion`` body in place, exactly as its stream would be.

    A stream carries a message's fields in the order string fields, audio transcript,
    ``function_call``, ``tool_calls``; a cut in one ends the choice there, so the fields
    after it are dropped (``None``; tool calls after the cut one are removed).
    """
    choices = body.get("choices")
    if not isinstance(choices, list):
        return ModeratedBody(body)
    hits: list[ChannelHit] = []
    for position, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", position)
        state = ChoiceState(index if isinstance(index, int) else position, config)
        message = choice.get("message")
        if isinstance(message, dict):
            _moderate_message(state, message)
        _whole_logprobs(state, choice)
        if state.cut:
            choice["finish_reason"] = "content_filter"
        hits.extend(state.take_hits())
    return ModeratedBody(body, tuple(hits))


def _moderate_message(state: ChoiceState, message: dict[str, Any]) -> None:
    for key, value in message.items():
        if key not in _NOT_TEXT and isinstance(value, str):
            message[key] = state.whole((key,), value)
        elif key == "content" and isinstance(value, list):
            message[key] = _content_parts(state, value)
    for key, fields in _OBJECT_TEXT.items():
        value = message.get(key)
        if isinstance(value, dict):
            message[key] = _whole_object(state, (key,), value, fields)
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        message["tool_calls"] = _whole_tool_calls(state, calls)
    annotations = message.get("annotations")
    if isinstance(annotations, list):
        message["annotations"] = _annotations(state, annotations)


def _whole_object(
    state: ChoiceState, path: Path, value: dict[str, Any], fields: dict[str, bool]
) -> dict[str, Any] | None:
    if state.cut:
        return None
    for name, is_json in fields.items():
        text = value.get(name)
        if isinstance(text, str):
            value[name] = state.whole((*path, name), text, json=is_json)
    return value


def _content_parts(state: ChoiceState, parts: list[Any]) -> list[Any] | None:
    """Content as a list of text parts (some compatible servers): each part a channel."""
    for j, part in enumerate(parts):
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            part["text"] = state.whole(("content", j, "text"), part["text"])
    return parts


def _whole_tool_calls(state: ChoiceState, calls: list[Any]) -> list[Any] | None:
    kept: list[Any] = []
    for position, call in enumerate(calls):
        if state.cut:
            break
        if isinstance(call, dict):
            for key, fields in _TOOL_TEXT.items():
                value = call.get(key)
                if isinstance(value, dict):
                    _whole_object(state, ("tool_calls", position, key), value, fields)
        kept.append(call)
    return kept or None


def _whole_logprobs(state: ChoiceState, choice: dict[str, Any]) -> None:
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict):
        for key, entries in logprobs.items():
            if isinstance(entries, list):
                kept = state.whole_logprobs((key,), entries, TOKEN_ENTRIES)
                logprobs[key] = [entry for _, entry in kept]


def _annotations(state: ChoiceState, annotations: list[Any]) -> list[Any]:
    """Keep url citations on the characters they cite, or drop them (docs/wire.md)."""
    channel = state.channels.get(("content",))
    kept = []
    for annotation in annotations:
        citation = annotation.get("url_citation") if isinstance(annotation, dict) else None
        if not isinstance(citation, dict):
            kept.append(annotation)
            continue
        start, end = citation.get("start_index"), citation.get("end_index")
        if channel is None or not isinstance(start, int) or not isinstance(end, int):
            continue
        span = channel.map_span(start, end)
        if span is None or not _clean_citation(state, citation):
            continue
        citation["start_index"], citation["end_index"] = span
        kept.append(annotation)
    return kept


def _clean_citation(state: ChoiceState, citation: dict[str, Any]) -> bool:
    return all(
        is_clean(state.config, v)
        for k, v in citation.items()
        if k in ("title", "url") and isinstance(v, str)
    )


# -- request ---------------------------------------------------------------------------


def request_fields(body: dict[str, Any]) -> Iterator[TextField]:
    """Every text a chat request sends upstream, for the input rules."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if isinstance(message, dict):
                yield from _message_fields(("messages", i), message)
    prediction = body.get("prediction")
    if isinstance(prediction, dict):
        yield from _content_fields(("prediction", "content"), prediction.get("content"))


def _message_fields(path: tuple[str | int, ...], message: dict[str, Any]) -> Iterator[TextField]:
    yield from _content_fields((*path, "content"), message.get("content"))
    refusal = message.get("refusal")
    if isinstance(refusal, str):
        yield TextField((*path, "refusal"), refusal)
    function_call = message.get("function_call")
    if isinstance(function_call, dict) and isinstance(function_call.get("arguments"), str):
        yield TextField((*path, "function_call", "arguments"), function_call["arguments"])
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for j, call in enumerate(calls):
            if not isinstance(call, dict):
                continue
            for key, fields in _TOOL_TEXT.items():
                value = call.get(key)
                for name in fields:
                    if isinstance(value, dict) and isinstance(value.get(name), str):
                        yield TextField((*path, "tool_calls", j, key, name), value[name])


def _content_fields(path: tuple[str | int, ...], content: Any) -> Iterator[TextField]:
    """A string content, or the text of each text/refusal part of a content array."""
    if isinstance(content, str):
        yield TextField(path, content)
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict):
                continue
            for key in ("text", "refusal"):
                if part.get("type") == key and isinstance(part.get(key), str):
                    yield TextField((*path, j, key), part[key])


ADAPTER = ApiAdapter(
    route=ROUTE,
    request_fields=request_fields,
    moderate_response=moderate_response,
    stream=stream,
)
