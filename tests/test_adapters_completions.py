"""Tests for the legacy Completions adapter: pure, JSON events in, events out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from gateway.adapters import ADAPTERS
from gateway.adapters.base import OutEvent, StreamModerator
from gateway.adapters.completions import moderate_response, request_fields
from gateway.sluice import SluiceConfig, moderate
from tests.adapter_support import CFG, NOTICE, SECRET

ADAPTER = ADAPTERS["/v1/completions"]
PROMPT_LEN = 7  # upstream's text_offset counts from the end of the prompt
SAFE = st.text(alphabet="abcdefghijklmopqrtuvwxyz ,.!é😀\n", max_size=40)
PLAIN = st.text(alphabet="abcdefghijklmopqrtuvwxyz ,.", max_size=30)


def split(text: str, cuts: Sequence[int]) -> list[str]:
    points = sorted({c for c in cuts if 0 < c < len(text)})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


def logprobs_for(tokens: Sequence[str], start: int) -> dict[str, Any]:
    offsets, at = [], start
    for t in tokens:
        offsets.append(at)
        at += len(t)
    return {
        "tokens": list(tokens),
        "token_logprobs": [-0.5] * len(tokens),
        "top_logprobs": [{t: -0.5} for t in tokens],
        "text_offset": offsets,
    }


def chunk(
    text: str, index: int = 0, finish: str | None = None, logprobs: Any = None, **extra: Any
) -> str:
    choice = {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish}
    body = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [choice],
        **extra,
    }
    return orjson.dumps(body).decode()


def events_for(
    deltas: Sequence[str], *, logprobs: bool = False, finish: str | None = "stop"
) -> list[str]:
    events, at = [], PROMPT_LEN
    for d in deltas:
        events.append(chunk(d, logprobs=logprobs_for([d], at) if logprobs else None))
        at += len(d)
    events.append(chunk("", finish=finish, logprobs=logprobs_for([], at) if logprobs else None))
    return events


def run(
    events: Sequence[str], body: dict[str, Any] | None = None, config: SluiceConfig = CFG
) -> tuple[list[OutEvent], StreamModerator]:
    moderator = ADAPTER.stream(body or {}, config)
    out = [o for data in events for o in moderator.on_event(data, None).events]
    return out, moderator


def finish_run(events: Sequence[str], config: SluiceConfig = CFG) -> list[OutEvent]:
    out, moderator = run([*events, "[DONE]"], config=config)
    assert moderator.finished and out[-1].data == "[DONE]"
    return out


def chunks_of(out: Sequence[OutEvent]) -> list[dict[str, Any]]:
    return [orjson.loads(o.data) for o in out if o.data != "[DONE]"]


def text_of(out: Sequence[OutEvent], index: int = 0) -> str:
    return "".join(c["text"] for ch in chunks_of(out) for c in ch["choices"] if c["index"] == index)


def merged_logprobs(out: Sequence[OutEvent]) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {
        "tokens": [],
        "token_logprobs": [],
        "top_logprobs": [],
        "text_offset": [],
    }
    for ch in chunks_of(out):
        for c in ch["choices"]:
            if c.get("logprobs"):
                for k in merged:
                    merged[k].extend(c["logprobs"][k] or [])
    return merged


def round_trip(data: str) -> str:
    return orjson.dumps(orjson.loads(data)).decode()


@given(text=SAFE, cuts=st.lists(st.integers(1, 40)))
def test_transparency_for_any_chunking(text: str, cuts: list[int]) -> None:
    events = events_for(split(text, cuts), logprobs=True)
    out = finish_run(events)
    assert [o.data for o in out] == [*map(round_trip, events), "[DONE]"]


@given(pre=PLAIN, post=PLAIN, cuts=st.lists(st.integers(1, 80)))
def test_redaction_keeps_logprobs_consistent(pre: str, post: str, cuts: list[int]) -> None:
    text = f"{pre}{SECRET}{post}"
    out = finish_run(events_for(split(text, cuts), logprobs=True))
    expected = moderate(CFG, text).text
    assert text_of(out) == expected
    lp = merged_logprobs(out)
    assert "".join(lp["tokens"]) == expected
    # text_offset points at each token in the released text (plus the prompt's length)
    for token, offset in zip(lp["tokens"], lp["text_offset"], strict=True):
        assert expected[offset - PROMPT_LEN : offset - PROMPT_LEN + len(token)] == token
    seen = "".join(o.data for o in out)
    assert "AB12" not in seen and "CD34" not in seen and "34EF" not in seen


@given(pre=PLAIN, post=PLAIN, cuts=st.lists(st.integers(1, 80)))
def test_block_ends_the_choice(pre: str, post: str, cuts: list[int]) -> None:
    out, moderator = run(
        events_for(split(f"{pre}nightingale{post} tail", cuts), logprobs=True), config=NOTICE
    )
    assert moderator.finished and out[-1] == OutEvent("[DONE]")
    last = chunks_of(out)[-1]["choices"][0]
    assert last["finish_reason"] == "content_filter"
    assert text_of(out) == pre + " [cut off]"
    assert "".join(merged_logprobs(out)["tokens"]) == pre + " [cut off]"
    assert "ingale" not in "".join(o.data for o in out)


def test_n_choices_and_usage() -> None:
    events = [
        chunk("a night", 0),
        chunk("all ", 1),
        chunk("ingale here", 0),
        chunk("good", 1),
        chunk("", 0, "stop"),
        chunk("", 1, "stop"),
        orjson.dumps(
            {
                "id": "cmpl-1",
                "object": "text_completion",
                "created": 1,
                "model": "m",
                "choices": [],
                "usage": {"total_tokens": 3},
            }
        ).decode(),
    ]
    out, moderator = run(events, {"n": 2, "stream_options": {"include_usage": True}})
    out += moderator.on_event("[DONE]", None).events
    assert text_of(out, 0) == "a "
    assert text_of(out, 1) == "all good"
    assert chunks_of(out)[-1]["usage"] == {"total_tokens": 3}
    assert [o.data for o in out].count("[DONE]") == 1


def test_eof_before_done_is_an_error() -> None:
    out, moderator = run(events_for(["Hello", " sk-AB12"], finish=None))
    end = moderator.on_eof().events
    assert orjson.loads(end[0].data)["error"]["code"] == "upstream_incomplete"
    assert "sk-AB12" not in "".join(o.data for o in out + end)


@given(pre=PLAIN, post=PLAIN, cuts=st.lists(st.integers(1, 80)), banned=st.booleans())
def test_non_streaming_equals_streaming(pre: str, post: str, cuts: list[int], banned: bool) -> None:
    text = f"{pre}{'nightingale' if banned else SECRET}{post}"
    deltas = split(text, cuts)
    out = finish_run(events_for(deltas, logprobs=True), config=NOTICE)
    body = {
        "id": "cmpl-1",
        "object": "text_completion",
        "choices": [
            {
                "text": text,
                "index": 0,
                "logprobs": logprobs_for(deltas, PROMPT_LEN),
                "finish_reason": "stop",
            }
        ],
    }
    result = moderate_response(body, NOTICE).body["choices"][0]
    assert result["text"] == text_of(out)
    streamed = merged_logprobs(out)
    for key in ("tokens", "text_offset", "top_logprobs"):
        assert result["logprobs"][key] == streamed[key]
    last = [c for ch in chunks_of(out) for c in ch["choices"] if c["finish_reason"]]
    assert result["finish_reason"] == last[-1]["finish_reason"]


def test_request_fields() -> None:
    assert [
        (type(f).__name__, f.param, f.text)
        for f in request_fields({"prompt": ["a", [1, 2], "b"], "suffix": "z"})
    ] == [
        ("TextField", "prompt[0]", "a"),
        ("Unreadable", "prompt[1]", ""),  # token ids: refused under an enforcing policy
        ("TextField", "prompt[2]", "b"),
        ("TextField", "suffix", "z"),
    ]
    assert [f.param for f in request_fields({"prompt": "hi"})] == ["prompt"]


def test_banned_alternatives_are_removed() -> None:
    lp = logprobs_for(["Hi"], PROMPT_LEN)
    lp["top_logprobs"] = [{"Hi": -0.1, " nightingale": -4.0}]
    out = finish_run([chunk("Hi", logprobs=lp), chunk("", finish="stop")])
    assert merged_logprobs(out)["top_logprobs"] == [{"Hi": -0.1}]
