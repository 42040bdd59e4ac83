"""Legacy Completions (``/v1/completions``): one text channel per choice.

Chunks are ``text_completion`` objects whose ``choices[].text`` carry the text and whose
``logprobs`` are parallel arrays (``tokens``, ``token_logprobs``, ``top_logprobs``,
``text_offset``; docs/wire.md, "Legacy Completions"). The arrays are turned into one entry per
token so the shared logprob rules apply (``logprobs``), then back; ``text_offset`` is recomputed
from the released text, since a redaction shifts every later offset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from gateway.adapters.base import ApiAdapter, ChannelHit, ModeratedBody, StreamModerator, TextField
from gateway.adapters.choices import ChoiceState, ChoiceStream, is_empty
from gateway.adapters.request_shapes import COMPLETIONS_TEXT
from gateway.adapters.unknown import UNKNOWN, Unknown, carries_text, key_is_safe
from gateway.sluice import SluiceConfig
from gateway.sluice.budget import Tally
from gateway.sluice.classify import Taps

ROUTE = "/v1/completions"
TEXT = ("text",)
_ARRAYS = ("tokens", "token_logprobs", "top_logprobs", "text_offset")


class LegacyEntries:
    """One token of the parallel arrays, as ``{token, logprob, top, offset}``."""

    def token_bytes(self, entry: Any) -> bytes | None:
        token = entry.get("token") if isinstance(entry, dict) else None
        return token.encode("utf-8", "surrogatepass") if isinstance(token, str) else None

    def synthetic(self, text: str, like: Any) -> Any:
        top = like.get("top", None) if isinstance(like, dict) else None
        offset = like.get("offset") if isinstance(like, dict) else None
        return {"token": text, "logprob": 0.0, "top": None if top is None else {}, "offset": offset}

    def scrub(self, entry: Any, keep: Callable[[str], bool]) -> Any:
        """Rebuilt from checked parts only: the placed token, numbers, and alternatives
        (raw text as keys) that a rule accepts; ``offset`` is recomputed later."""
        top = entry.get("top")
        kept = (
            {k: _number(v) for k, v in top.items() if isinstance(k, str) and keep(k)}
            if isinstance(top, dict)
            else None
        )
        offset = entry.get("offset")
        return {
            "token": entry["token"],
            "logprob": _number(entry.get("logprob")),
            "top": kept,
            "offset": offset if isinstance(offset, int) else None,
        }


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


LEGACY_ENTRIES = LegacyEntries()


def _entries(logprobs: Any) -> list[dict[str, Any]] | None:
    """The arrays as entries; ``None`` when they are not arrays of one length."""
    if not isinstance(logprobs, dict):
        return None
    tokens = logprobs.get("tokens")
    if not isinstance(tokens, list):
        return None
    arrays = [logprobs.get(name) for name in _ARRAYS[1:]]
    if any(a is not None and (not isinstance(a, list) or len(a) != len(tokens)) for a in arrays):
        return None
    values, tops, offsets = (a if isinstance(a, list) else [None] * len(tokens) for a in arrays)
    return [
        {"token": t, "logprob": v, "top": top, "offset": o}
        for t, v, top, o in zip(tokens, values, tops, offsets, strict=True)
    ]


def _arrays(
    choice: ChoiceState, taken: list[tuple[int, Any]], like: Any
) -> dict[str, list[Any] | None]:
    """Entries back to arrays, with ``text_offset`` on the released text."""
    if taken and choice.offset_base is None:
        out_offset, first = taken[0]
        upstream = first.get("offset")
        choice.offset_base = upstream - out_offset if isinstance(upstream, int) else 0
    base = choice.offset_base or 0
    has_top = isinstance(like, dict) and isinstance(like.get("top_logprobs"), list)
    has_top |= any(e["top"] is not None for _, e in taken)
    return {
        "tokens": [e["token"] for _, e in taken],
        "token_logprobs": [e["logprob"] for _, e in taken],
        "top_logprobs": [e["top"] for _, e in taken] if has_top else None,
        "text_offset": [base + offset for offset, _ in taken],
    }


def _put_logprobs(choice: ChoiceState, entry: dict[str, Any]) -> None:
    taken = choice.channel(TEXT, logprobs=LEGACY_ENTRIES).take_logprobs()
    upstream = entry.get("logprobs")
    if isinstance(upstream, dict):
        entry["logprobs"] = _arrays(choice, taken, upstream)
    elif taken:
        entry["logprobs"] = _arrays(choice, taken, None)
    elif upstream is not None:
        entry["logprobs"] = None  # not the arrays: nothing in it could be checked


class CompletionsShape:
    """Rewrites ``choices[]`` entries of ``text_completion`` chunks."""

    def rewrite(
        self, choice: ChoiceState, entry: dict[str, Any], first: bool
    ) -> dict[str, Any] | None:
        if choice.ended:
            if choice.cut or _carries_text(entry):
                return None
            after: dict[str, Any] = choice.unknown_whole(entry)
            return after
        channel = choice.channel(TEXT, logprobs=LEGACY_ENTRIES)
        out = _members(choice, entry, streamed=True)
        text = entry.get("text")
        if isinstance(text, str):
            out["text"] = choice.feed(TEXT, text)
        entries = _entries(entry.get("logprobs"))
        if entries:
            channel.add_logprobs(entries)
        if entry.get("finish_reason") is not None or choice.cut:
            _finish(choice, out)
        _put_logprobs(choice, out)
        if _carries_text(entry) and not first and is_empty(out):
            return None
        return out

    def close(self, choice: ChoiceState) -> dict[str, Any] | None:
        out: dict[str, Any] = {"text": "", "index": choice.index, "logprobs": None}
        _finish(choice, out)
        _put_logprobs(choice, out)
        out["finish_reason"] = "content_filter" if choice.cut else None
        return None if is_empty(out) else out


def _members(choice: ChoiceState, entry: dict[str, Any], *, streamed: bool) -> dict[str, Any]:
    """The entry's own members as they are (text and logprobs are rebuilt after), and the
    rest moderated: nothing upstream adds goes out unchecked. A streamed choice is where
    a chat delta would be, so there its other text members are channels per path."""
    out: dict[str, Any] = {}
    for key, value in entry.items():
        if key in ("text", "index", "logprobs"):
            out[key] = value
        elif not key_is_safe(choice.config, key):
            continue
        elif streamed and key != "finish_reason":
            out[key] = choice.unknown_delta(key, value)
        else:
            out[key] = choice.unknown_whole(value, (key,))
    return out


def _finish(choice: ChoiceState, entry: dict[str, Any]) -> None:
    for path, text in choice.finish():
        if path[0] == UNKNOWN:
            choice.release_unknown(entry, path, text)
            continue
        previous = entry.get("text")
        entry["text"] = (previous if isinstance(previous, str) else "") + text
    choice.ended = True
    if choice.cut:
        entry["finish_reason"] = "content_filter"


def _carries_text(entry: dict[str, Any]) -> bool:
    logprobs = entry.get("logprobs")
    tokens = logprobs.get("tokens") if isinstance(logprobs, dict) else None
    return carries_text(entry) or bool(tokens)


def stream(body: dict[str, Any], config: SluiceConfig, taps: Taps | None = None) -> StreamModerator:
    return ChoiceStream(CompletionsShape(), body, config, taps)


def moderate_response(
    body: dict[str, Any], config: SluiceConfig, taps: Taps | None = None
) -> ModeratedBody:
    """Moderate a ``text_completion`` body in place, exactly as its stream would be."""
    envelope = Unknown(config, "envelope")
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key == "choices" and isinstance(value, list):
            out[key] = value
        elif envelope.member(key):
            out[key] = envelope.value(value, (key,))
    found = out.get("choices")
    choices: list[Any] = found if isinstance(found, list) else []
    hits: list[ChannelHit] = list(envelope.hits)
    tally = Tally()
    for position, entry in enumerate(choices):
        if not isinstance(entry, dict):
            continue
        index = entry.get("index", position)
        tally.open()
        choice = ChoiceState(index if isinstance(index, int) else position, config, tally, taps)
        entry = choices[position] = _members(choice, entry, streamed=False)
        choice.channel(TEXT, logprobs=LEGACY_ENTRIES)
        text = entry.get("text")
        if isinstance(text, str):
            entry["text"] = choice.whole(TEXT, text)
        logprobs = entry.get("logprobs")
        entries = _entries(logprobs)
        if isinstance(logprobs, dict):
            taken = choice.whole_logprobs(TEXT, entries or [], LEGACY_ENTRIES)
            entry["logprobs"] = _arrays(choice, taken, logprobs)
        elif logprobs is not None:
            entry["logprobs"] = None
        if choice.cut:
            entry["finish_reason"] = "content_filter"
        hits.extend(choice.take_hits())
    return ModeratedBody(out, tuple(hits))


def request_fields(body: dict[str, Any]) -> Iterator[TextField]:
    """Every text a completions request sends upstream: each string and member name but
    the structural ones (``request_shapes.COMPLETIONS``); token-id prompts as
    ``Unreadable``."""
    return COMPLETIONS_TEXT(body)


ADAPTER = ApiAdapter(
    route=ROUTE,
    request_fields=COMPLETIONS_TEXT,
    moderate_response=moderate_response,
    stream=stream,
)
