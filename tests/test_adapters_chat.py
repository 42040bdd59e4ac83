"""Tests for the Chat Completions adapter: pure, JSON events in, events out.

Every stream the adapter emits is also replayed through the Python SDK's own stream
state (``ChatCompletionStreamState``), so "valid for the SDK" is checked by the SDK.
"""

from __future__ import annotations

import codecs
import copy
import dataclasses
import json
import re
from collections.abc import Sequence
from typing import Any

import httpx2
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai import APIError, ContentFilterFinishReasonError, OpenAI
from openai._models import construct_type
from openai._streaming import Stream
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from gateway.adapters import ADAPTERS
from gateway.adapters.base import OutEvent, StreamModerator
from gateway.adapters.chat_completions import moderate_response, request_fields
from gateway.adapters.inputs import moderate_request
from gateway.sluice import Action, Matcher, Rule, SluiceConfig, moderate
from gateway.sse import encode_event
from tests.adapter_support import CFG, NOTICE, SECRET, STREAMED_TOOLS, every_string

ADAPTER = ADAPTERS["/v1/chat/completions"]
# Text that no rule can start on: no "s" (sk-) and no "n" (nightingale).
SAFE = st.text(alphabet='abcdefghijklmopqrtuvwxyz ,.!é😀\n"\\', max_size=40)
UNESCAPED = st.text(alphabet="abcdefghijklmopqrtuvwxyz ,.!é😀", max_size=40)
PLAIN = st.text(alphabet="abcdefghijklmopqrtuvwxyz ,.", max_size=30)


# -- building upstream events ----------------------------------------------------------


def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "system_fingerprint": None,
        "choices": choices,
        **extra,
    }
    return orjson.dumps(body).decode()


def entry(
    delta: dict[str, Any], index: int = 0, finish: str | None = None, **kw: Any
) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": kw.get("logprobs"), "finish_reason": finish}


def token(text: str, raw: bytes | None = None) -> dict[str, Any]:
    data = list(raw if raw is not None else text.encode())
    return {
        "token": text,
        "logprob": -0.25,
        "bytes": data,
        "top_logprobs": [{"token": text, "logprob": -0.25, "bytes": data}],
    }


def split(text: str, cuts: Sequence[int]) -> list[str]:
    points = sorted({c for c in cuts if 0 < c < len(text)})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


def content_events(
    deltas: Sequence[str], *, index: int = 0, logprobs: bool = False, finish: str | None = "stop"
) -> list[str]:
    events = [chunk([entry({"role": "assistant", "content": ""}, index)])]
    for d in deltas:
        lp = {"content": [token(d)], "refusal": None} if logprobs else None
        events.append(chunk([entry({"content": d}, index, logprobs=lp)]))
    events.append(chunk([entry({}, index, finish)]))
    return events


def run(
    events: Sequence[str], body: dict[str, Any] | None = None, config: SluiceConfig = CFG
) -> tuple[list[OutEvent], StreamModerator]:
    moderator = ADAPTER.stream(body or {}, config)
    out: list[OutEvent] = []
    for data in events:
        out.extend(moderator.on_event(data, None).events)
    return out, moderator


def finish_run(
    events: Sequence[str], body: dict[str, Any] | None = None, config: SluiceConfig = CFG
) -> list[OutEvent]:
    out, moderator = run([*events, "[DONE]"], body, config)
    assert moderator.finished
    return out


# -- reading what the client gets ------------------------------------------------------


def chunks_of(out: Sequence[OutEvent]) -> list[dict[str, Any]]:
    assert all(o.event is None for o in out), "chat is sent without event: names (Node 4.x)"
    return [orjson.loads(o.data) for o in out if o.data != "[DONE]"]


def sdk_final(out: Sequence[OutEvent]) -> Any:
    """Replay through the SDK's stream state; returns its final completion (or raises)."""
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for c in chunks_of(out):
        state.handle_chunk(construct_type(type_=ChatCompletionChunk, value=c))
    return state.get_final_completion()


def sdk_snapshot(out: Sequence[OutEvent]) -> Any:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for c in chunks_of(out):
        state.handle_chunk(construct_type(type_=ChatCompletionChunk, value=c))
    return state.current_completion_snapshot


def content_of(out: Sequence[OutEvent], index: int = 0) -> str:
    return "".join(
        e["delta"].get("content") or ""
        for c in chunks_of(out)
        for e in c["choices"]
        if e["index"] == index and isinstance(e.get("delta"), dict)
    )


def logprob_tokens(out: Sequence[OutEvent], index: int = 0, key: str = "content") -> list[str]:
    return [
        t["token"]
        for c in chunks_of(out)
        for e in c["choices"]
        if e["index"] == index and isinstance(e.get("logprobs"), dict)
        for t in e["logprobs"].get(key) or []
    ]


def visible(out: Sequence[OutEvent]) -> str:
    return "\x00".join(s for c in chunks_of(out) for s in every_string(c))


def assert_hidden(out: Sequence[OutEvent], secret: str, window: int = 4) -> None:
    """No ``window``-character piece of the secret's tail reaches the client anywhere."""
    seen = visible(out)
    tail = secret[3:]
    for i in range(len(tail) - window + 1):
        assert tail[i : i + window] not in seen, tail[i : i + window]


def round_trip(data: str) -> str:
    return orjson.dumps(orjson.loads(data)).decode()


# -- transparency ----------------------------------------------------------------------


def test_transparent_stream_is_byte_identical() -> None:
    events = [
        chunk(
            [entry({"role": "assistant", "content": "", "refusal": None}, 0)],
            usage=None,
            obfuscation="x7Q",
        ),
        chunk(
            [
                entry(
                    {"content": "Hello"}, 0, logprobs={"content": [token("Hello")], "refusal": None}
                )
            ],
            usage=None,
        ),
        chunk(
            [
                entry(
                    {"content": " world"},
                    0,
                    logprobs={"content": [token(" world")], "refusal": None},
                )
            ],
            usage=None,
        ),
        chunk([entry({}, 0, "stop")], usage=None),
        chunk([], usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}),
    ]
    out = finish_run(events, {"stream_options": {"include_usage": True}})
    assert [o.data for o in out] == [*map(round_trip, events), "[DONE]"]


@given(text=SAFE, cuts=st.lists(st.integers(1, 40)), args=UNESCAPED)
def test_transparency_for_any_chunking(text: str, cuts: list[int], args: str) -> None:
    raw_args = json.dumps({"q": args, "m": 12.5, "ok": [True, 7]}, ensure_ascii=False)
    events = content_events(split(text, cuts), logprobs=True, finish=None)
    events.append(
        chunk(
            [
                entry(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "f", "arguments": ""},
                            }
                        ]
                    }
                )
            ]
        )
    )
    for piece in split(raw_args, cuts):
        events.append(
            chunk([entry({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})])
        )
    events.append(chunk([entry({}, 0, "tool_calls")]))
    out = finish_run(events, config=STREAMED_TOOLS)
    assert [o.data for o in out] == [*map(round_trip, events), "[DONE]"]
    whole = finish_run(events)
    assert sdk_final(whole).model_dump() == sdk_final(out).model_dump()


def test_text_that_cannot_start_a_match_leaves_at_once() -> None:
    out, _ = run(content_events(["Hi the", "re, fri", "end"], finish=None))
    assert [c["choices"][0]["delta"].get("content") for c in chunks_of(out)] == [
        "",
        "Hi the",
        "re, fri",
        "end",
        None,
    ]


# -- redaction -------------------------------------------------------------------------


@given(pre=PLAIN, post=PLAIN, cuts=st.lists(st.integers(1, 80)))
def test_redaction_for_any_chunking(pre: str, post: str, cuts: list[int]) -> None:
    text = f"{pre}{SECRET}{post}"
    out = finish_run(content_events(split(text, cuts), logprobs=True))
    expected = moderate(CFG, text).text
    assert content_of(out) == expected
    assert "[REDACTED]" in expected
    assert "".join(logprob_tokens(out)) == expected  # tokens keep spelling the text
    assert_hidden(out, SECRET)
    assert sdk_final(out).choices[0].message.content == expected


@given(
    pre=PLAIN,
    post=PLAIN,
    token_cuts=st.lists(st.integers(1, 200)),
    delta_cuts=st.lists(st.integers(1, 60)),
)
def test_logprobs_with_tokens_split_inside_characters(
    pre: str, post: str, token_cuts: list[int], delta_cuts: list[int]
) -> None:
    """Tokens cut mid-UTF-8 (as OpenAI's ``bytes`` do) still travel with their text."""
    text = f"{pre}é😀 {SECRET} ü{post}"
    raw = text.encode()
    points = sorted({c for c in token_cuts if 0 < c < len(raw)})
    tokens = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    groups = split("x" * len(tokens), delta_cuts)
    decoder = codecs.getincrementaldecoder("utf-8")()
    events = [chunk([entry({"role": "assistant", "content": ""})])]
    position = 0
    for group in groups:
        mine = tokens[position : position + len(group)]
        position += len(group)
        delta = "".join(decoder.decode(t) for t in mine)
        entries = [token(t.decode("utf-8", "replace"), t) for t in mine]
        events.append(chunk([entry({"content": delta}, logprobs={"content": entries})]))
    events.append(chunk([entry({}, 0, "stop")]))
    out = finish_run(events)
    expected = moderate(CFG, text).text
    assert content_of(out) == expected
    released = b"".join(
        bytes(t["bytes"])
        for c in chunks_of(out)
        for e in c["choices"]
        if e.get("logprobs")
        for t in e["logprobs"]["content"]
    )
    assert released == expected.encode()
    assert_hidden(out, SECRET)


def test_logprob_entries_wait_for_their_text_and_redactions_merge() -> None:
    events = content_events(["Hi ", "my key sk", "-AB12", "CD34EF is", " here"], logprobs=True)
    out = finish_run(events)
    tokens = logprob_tokens(out)
    assert tokens == ["Hi ", "my key [REDACTED] is", " here"]
    merged = next(
        t
        for c in chunks_of(out)
        for e in c["choices"]
        if e.get("logprobs")
        for t in e["logprobs"]["content"]
        if "REDACTED" in t["token"]
    )
    assert merged == {
        "token": "my key [REDACTED] is",
        "logprob": 0.0,
        "bytes": list(b"my key [REDACTED] is"),
        "top_logprobs": [],
    }


def test_logprobs_that_do_not_spell_the_text_are_dropped() -> None:
    events = [chunk([entry({"role": "assistant", "content": ""})])]
    events.append(chunk([entry({"content": "Hello"}, logprobs={"content": [token("Hello")]})]))
    events.append(
        chunk([entry({"content": " sk-AB12CD34EF"}, logprobs={"content": [token(" other")]})])
    )
    events.append(chunk([entry({"content": " ok"}, logprobs={"content": [token(" ok")]})]))
    events.append(chunk([entry({}, 0, "stop")]))
    out = finish_run(events)
    assert logprob_tokens(out) == ["Hello"]
    assert_hidden(out, SECRET)


def test_refusal_and_reasoning_are_channels() -> None:
    events = [chunk([entry({"role": "assistant", "refusal": ""})])]
    for piece in ["I can't: sk-AB", "12CD34EF."]:
        events.append(chunk([entry({"refusal": piece}, logprobs={"refusal": [token(piece)]})]))
    events.append(chunk([entry({"reasoning_content": "think sk-AB12CD34EF"})]))
    events.append(chunk([entry({}, 0, "stop")]))
    out = finish_run(events)
    snapshot = sdk_snapshot(out)
    assert snapshot.choices[0].message.refusal == "I can't: [REDACTED]."
    assert logprob_tokens(out, key="refusal") == ["I can't: [REDACTED]."]
    reasoning = "".join(
        e["delta"].get("reasoning_content", "") for c in chunks_of(out) for e in c["choices"]
    )
    assert reasoning == "think [REDACTED]"
    assert_hidden(out, SECRET)


def test_held_text_is_flushed_before_the_finish() -> None:
    out = finish_run(content_events(["Ask me", " about sk"]))
    finish = [c for c in chunks_of(out) if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finish[0]["choices"][0]["delta"] == {"content": "sk"}
    assert content_of(out) == "Ask me about sk"


def test_held_text_without_a_finish_reason_is_flushed_at_done() -> None:
    out = finish_run(content_events(["Ask me", " about sk"], finish=None))
    assert content_of(out) == "Ask me about sk"
    assert out[-1].data == "[DONE]"
    assert chunks_of(out)[-1]["choices"][0] == {
        "index": 0,
        "delta": {"content": "sk"},
        "logprobs": None,
        "finish_reason": None,
    }


# -- block -----------------------------------------------------------------------------


@given(pre=PLAIN, post=PLAIN, cuts=st.lists(st.integers(1, 80)))
def test_block_ends_the_choice_for_any_chunking(pre: str, post: str, cuts: list[int]) -> None:
    text = f"{pre}nightingale{post} tail"
    out, moderator = run(content_events(split(text, cuts), logprobs=True), config=NOTICE)
    assert moderator.finished
    assert out[-1].data == "[DONE]"
    last = chunks_of(out)[-1]["choices"][0]
    assert last["finish_reason"] == "content_filter"
    assert content_of(out) == pre + " [cut off]"
    assert "".join(logprob_tokens(out)) == pre + " [cut off]"
    assert "ingale" not in visible(out) and "tail" not in visible(out)
    with pytest.raises(ContentFilterFinishReasonError):
        sdk_final(out)


def test_events_after_the_end_are_ignored() -> None:
    out, moderator = run(content_events(["the nightingale", " sings"]))
    assert moderator.finished
    assert moderator.on_event(chunk([entry({"content": "more"})]), None).events == []
    assert moderator.on_eof().events == []
    assert "sings" not in visible(out)


def test_other_choices_go_on_when_one_is_cut() -> None:
    events = [
        chunk(
            [
                entry({"role": "assistant", "content": ""}, 0),
                entry({"role": "assistant", "content": ""}, 1),
            ]
        ),
        chunk([entry({"content": "a nightingale"}, 0), entry({"content": "all good"}, 1)]),
        chunk([entry({"content": " sang"}, 0)]),
        chunk([entry({"content": " here"}, 1)]),
        chunk([entry({}, 0, "stop"), entry({}, 1, "stop")]),
        chunk([], usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}),
    ]
    out, moderator = run(events, {"n": 2, "stream_options": {"include_usage": True}})
    assert not moderator.finished
    out += moderator.on_event("[DONE]", None).events
    assert moderator.finished
    assert content_of(out, 0) == "a "
    assert content_of(out, 1) == "all good here"
    reasons = [
        (e["index"], e["finish_reason"])
        for c in chunks_of(out)
        for e in c["choices"]
        if e["finish_reason"]
    ]
    assert reasons == [(0, "content_filter"), (1, "stop")]
    assert chunks_of(out)[-1]["usage"]["total_tokens"] == 3
    assert "sang" not in visible(out)


def test_all_choices_cut_ends_at_once_without_usage() -> None:
    events = [
        chunk(
            [
                entry({"role": "assistant", "content": ""}, 0),
                entry({"role": "assistant", "content": ""}, 1),
            ]
        ),
        chunk([entry({"content": "nightingale "}, 0)]),
        chunk([entry({"content": "x nightingale "}, 1)]),
    ]
    out, moderator = run(events, {"n": 2, "stream_options": {"include_usage": True}})
    assert moderator.finished
    assert out[-1] == OutEvent("[DONE]")
    assert [o.data for o in out].count("[DONE]") == 1


def test_block_inside_tool_arguments() -> None:
    events = [
        chunk(
            [
                entry(
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "f", "arguments": ""},
                            }
                        ],
                    }
                )
            ]
        )
    ]
    for piece in ['{"q": "the night', 'ingale", "x": 1}']:
        events.append(
            chunk([entry({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})])
        )
    out, moderator = run(events, config=STREAMED_TOOLS)
    assert moderator.finished
    last = chunks_of(out)[-1]["choices"][0]
    assert last["finish_reason"] == "content_filter"
    args = "".join(
        t["function"]["arguments"]
        for c in chunks_of(out)
        for e in c["choices"]
        for t in e["delta"].get("tool_calls") or []
    )
    assert args == '{"q": "the '
    assert "ingale" not in visible(out)


# -- tool calls ------------------------------------------------------------------------


def tool_events(calls: Sequence[tuple[str, str]], cuts: Sequence[int]) -> list[str]:
    events = [chunk([entry({"role": "assistant", "content": None})])]
    for i, (name, raw) in enumerate(calls):
        head = {
            "index": i,
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        events.append(chunk([entry({"tool_calls": [head]})]))
        for piece in split(raw, cuts):
            events.append(
                chunk([entry({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})])
            )
    events.append(chunk([entry({}, 0, "tool_calls")]))
    return events


def escaped(text: str) -> str:
    """JSON for ``{"q": text, "n": 5}`` with the secret's letters written as \\u escapes."""
    raw = json.dumps({"q": text, "n": 5})
    return raw.replace("A", "\\u0041").replace("C", "\\u0043")


@given(
    pre=SAFE,
    post=SAFE,
    cuts=st.lists(st.integers(1, 120)),
    style=st.sampled_from(["plain", "escaped", "ascii"]),
)
def test_tool_arguments_stay_valid_json(pre: str, post: str, cuts: list[int], style: str) -> None:
    value = f"{pre}{SECRET}{post}"
    if style == "escaped":
        raw = escaped(value)
    else:
        raw = json.dumps({"q": value, "n": 5}, ensure_ascii=style == "ascii")
    out = finish_run(tool_events([("f", raw), ("g", json.dumps({"k": SECRET}))], cuts))
    final = sdk_final(out)
    calls = final.choices[0].message.tool_calls
    assert [c.id for c in calls] == ["call_0", "call_1"]  # ids and names sent once
    assert [c.function.name for c in calls] == ["f", "g"]
    first = json.loads(calls[0].function.arguments)
    assert first == {"q": moderate(CFG, value).text, "n": 5}
    assert json.loads(calls[1].function.arguments) == {"k": "[REDACTED]"}
    assert_hidden(out, SECRET)
    assert "\\u0041B12" not in visible(out)


def test_redaction_across_json_structure_cuts_instead() -> None:
    crossing = dataclasses.replace(
        STREAMED_TOOLS, enforce=Matcher([Rule("x", r'a", "b', Action.REDACT, "[X]")], 0.1)
    )
    out = finish_run(tool_events([("f", '{"k": ["a", "b"]}')], [4, 9]), config=crossing)
    last = chunks_of(out)[-1]["choices"][0]
    assert last["finish_reason"] == "content_filter"
    args = "".join(
        t["function"]["arguments"]
        for c in chunks_of(out)
        for e in c["choices"]
        for t in e["delta"].get("tool_calls") or []
    )
    assert args == '{"k": ["'


def test_a_new_tool_index_finishes_the_previous_call() -> None:
    events = tool_events([("f", '{"a": "sk'), ("g", "{}")], [])
    out = finish_run(events, config=STREAMED_TOOLS)
    second_head = next(
        c
        for c in chunks_of(out)
        if any(
            t.get("id") == "call_1"
            for e in c["choices"]
            for t in e["delta"].get("tool_calls") or []
        )
    )
    calls = second_head["choices"][0]["delta"]["tool_calls"]
    assert calls[0] == {"index": 0, "function": {"arguments": "sk"}}
    assert calls[1]["id"] == "call_1"


def test_legacy_function_call_arguments() -> None:
    events = [
        chunk([entry({"role": "assistant", "function_call": {"name": "f", "arguments": ""}})])
    ]
    for piece in ['{"k": "sk-AB1', '2CD34EF"}']:
        events.append(chunk([entry({"function_call": {"arguments": piece}})]))
    events.append(chunk([entry({}, 0, "function_call")]))
    out = finish_run(events)
    args = "".join(
        e["delta"].get("function_call", {}).get("arguments", "")
        for c in chunks_of(out)
        for e in c["choices"]
    )
    assert json.loads(args) == {"k": "[REDACTED]"}
    assert sdk_final(out).choices[0].message.function_call.name == "f"


# -- how a stream ends -----------------------------------------------------------------


def test_eof_before_done_is_an_error_and_discards_held_text() -> None:
    out, moderator = run(content_events(["Hello", " sk-AB12"], finish=None))
    end = moderator.on_eof().events
    assert moderator.finished
    assert len(end) == 1
    error = orjson.loads(end[0].data)["error"]
    assert error["type"] == "upstream_error" and error["code"] == "upstream_incomplete"
    assert "sk-AB12" not in visible([*out, *end])
    assert "[DONE]" not in [o.data for o in out + end]


def test_eof_after_every_choice_finished_ends_cleanly() -> None:
    _out, moderator = run(content_events(["Hello"]))
    assert moderator.on_eof().events == [OutEvent("[DONE]")]


def test_upstream_error_ends_with_an_error_event() -> None:
    _, moderator = run(content_events(["Hello", " sk-AB"], finish=None))
    end = moderator.on_upstream_error("timeout").events
    assert orjson.loads(end[0].data)["error"]["code"] == "upstream_error"
    assert moderator.finished and moderator.held == 0


def test_malformed_event_is_an_error() -> None:
    _, moderator = run(content_events(["Hello"], finish=None))
    end = moderator.on_event("{not json", None).events
    assert orjson.loads(end[0].data)["error"]["code"] == "upstream_malformed_event"
    assert moderator.finished


def test_upstream_error_event_passes_through() -> None:
    _, moderator = run(content_events(["Hello sk-AB"], finish=None))
    error = '{"error":{"message":"overloaded","type":"server_error","code":null,"param":null}}'
    assert moderator.on_event(error, None).events == [OutEvent(error)]
    assert moderator.finished


def sdk_stream(out: Sequence[OutEvent]) -> list[Any]:
    """Decode our frames with the SDK's raw ``Stream``, as ``create(stream=True)`` does."""
    body = b"".join(encode_event(o.data, o.event) for o in out)
    request = httpx2.Request("POST", "http://gateway/v1/chat/completions")
    response = httpx2.Response(200, content=body, request=request)
    client = OpenAI(api_key="k", base_url="http://gateway/v1")
    return list(Stream(cast_to=ChatCompletionChunk, response=response, client=client))


@pytest.mark.parametrize("end", ["eof", "error", "malformed"])
def test_sdk_raises_when_the_stream_breaks(end: str) -> None:
    out, moderator = run(content_events(["Hello", " there sk-AB"], finish=None))
    if end == "eof":
        out += moderator.on_eof().events
    elif end == "error":
        out += moderator.on_upstream_error("read timeout").events
    else:
        out += moderator.on_event("{oops", None).events
    with pytest.raises(APIError):
        sdk_stream(out)


def test_sdk_reads_a_cut_stream_to_its_end() -> None:
    out, _ = run(content_events(["the nightingale", " sings"]))
    chunks = sdk_stream(out)
    assert chunks[-1].choices[0].finish_reason == "content_filter"


# -- non-streaming ---------------------------------------------------------------------


def completion(
    message: dict[str, Any], logprobs: Any = None, finish: str = "stop"
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@given(pre=PLAIN, post=PLAIN, cuts=st.lists(st.integers(1, 80)), banned=st.booleans())
def test_non_streaming_equals_streaming(pre: str, post: str, cuts: list[int], banned: bool) -> None:
    text = f"{pre}{'nightingale' if banned else SECRET}{post}"
    deltas = split(text, cuts)
    out = finish_run(content_events(deltas, logprobs=True), config=NOTICE)
    body = completion(
        {"role": "assistant", "content": text, "refusal": None},
        {"content": [token(d) for d in deltas], "refusal": None},
    )
    result = moderate_response(body, NOTICE).body
    choice = result["choices"][0]
    streamed = sdk_snapshot(out).choices[0]
    assert choice["message"]["content"] == streamed.message.content
    assert choice["finish_reason"] == streamed.finish_reason
    assert [t["token"] for t in choice["logprobs"]["content"]] == logprob_tokens(out)


def test_non_streaming_tool_calls_and_cut() -> None:
    body = completion(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c0",
                    "type": "function",
                    "function": {"name": "f", "arguments": escaped(f"x {SECRET}")},
                },
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "g", "arguments": '{"q": "nightingale"}'},
                },
                {"id": "c2", "type": "function", "function": {"name": "h", "arguments": "{}"}},
            ],
        },
        finish="tool_calls",
    )
    streamed = moderate_response(copy.deepcopy(body), STREAMED_TOOLS).body["choices"][0]
    calls = streamed["message"]["tool_calls"]
    assert calls[1]["function"]["arguments"] == '{"q": "'
    assert len(calls) == 2
    result = moderate_response(body, CFG)
    choice = result.body["choices"][0]
    [call] = choice["message"]["tool_calls"]  # the cut call is withdrawn whole
    assert json.loads(call["function"]["arguments"]) == {"q": "x [REDACTED]", "n": 5}
    assert choice["finish_reason"] == "content_filter"
    assert {found.hit.rule_id for found in result.hits} == {"secret", "ban"}


def tool_calls_sent(out: Sequence[OutEvent]) -> list[Any]:
    return [
        call
        for c in chunks_of(out)
        for e in c["choices"]
        for call in e["delta"].get("tool_calls") or []
    ]


def test_whole_tool_calls_go_out_complete_once_each() -> None:
    raw = json.dumps({"to": "ops-team", "subject": "weekly report", "n": 3})
    out = finish_run(tool_events([("send", raw), ("log", "{}")], [3, 11, 20]))
    entries = tool_calls_sent(out)
    assert entries == [
        {
            "index": 0,
            "id": "call_0",
            "type": "function",
            "function": {"name": "send", "arguments": raw},
        },
        {
            "index": 1,
            "id": "call_1",
            "type": "function",
            "function": {"name": "log", "arguments": "{}"},
        },
    ]
    assert sdk_final(out).choices[0].finish_reason == "tool_calls"


@given(cuts=st.lists(st.integers(1, 30)))
def test_a_block_in_tool_arguments_withdraws_the_whole_call(cuts: list[int]) -> None:
    ok = json.dumps({"q": "fine"})
    cut = json.dumps({"to": "ops-team", "subject": "the nightingale files"})
    out = finish_run(tool_events([("first", ok), ("send", cut), ("after", "{}")], cuts))
    sent = tool_calls_sent(out)
    assert sent == [
        {
            "index": 0,
            "id": "call_0",
            "type": "function",
            "function": {"name": "first", "arguments": ok},
        }
    ]
    assert all("ops-team" not in o.data and "send" not in o.data for o in out)
    assert chunks_of(out)[-1]["choices"][0]["finish_reason"] == "content_filter"
    with pytest.raises(ContentFilterFinishReasonError):
        sdk_final(out)


def test_non_streaming_annotations_follow_the_text() -> None:
    text = f"See {SECRET} at docs and the spec."
    cites = [
        {
            "type": "url_citation",
            "url_citation": {
                "start_index": 21,
                "end_index": 25,
                "title": "Docs",
                "url": "https://d",
            },
        },
        {
            "type": "url_citation",
            "url_citation": {"start_index": 4, "end_index": 10, "title": "Key", "url": "https://k"},
        },
        {
            "type": "url_citation",
            "url_citation": {
                "start_index": 30,
                "end_index": 34,
                "title": "nightingale",
                "url": "https://x",
            },
        },
    ]
    body = completion({"role": "assistant", "content": text, "annotations": cites})
    message = moderate_response(body, CFG).body["choices"][0]["message"]
    content = message["content"]
    assert content == "See [REDACTED] at docs and the spec."
    assert len(message["annotations"]) == 1
    kept = message["annotations"][0]["url_citation"]
    assert content[kept["start_index"] : kept["end_index"]] == "docs"


def test_non_streaming_content_cut_drops_later_fields() -> None:
    body = completion(
        {
            "role": "assistant",
            "content": "a nightingale",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        }
    )
    choice = moderate_response(body, NOTICE).body["choices"][0]
    assert choice["message"]["content"] == "a  [cut off]"
    assert choice["message"]["tool_calls"] is None
    assert choice["finish_reason"] == "content_filter"


# -- request ---------------------------------------------------------------------------


def test_request_fields_list_every_text() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "sys"},
            {
                "role": "user",
                "name": "bob",
                "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "refusal": "no",
                "tool_calls": [
                    {
                        "id": "c",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a": 1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": "result"},
            {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}},
        ],
        "prediction": {"type": "content", "content": "guess"},
    }
    params = {f.param: f.text for f in request_fields(body)}
    assert params == {  # every string but the enums (roles, types): ids and URLs too
        "model": "m",
        "messages[0].content": "sys",
        "messages[1].name": "bob",
        "messages[1].content[0].text": "hi",
        "messages[1].content[1].image_url.url": "https://example.com/cat.png",
        "messages[2].refusal": "no",
        "messages[2].tool_calls[0].id": "c",
        "messages[2].tool_calls[0].function.name": "f",
        "messages[2].tool_calls[0].function.arguments": '{"a": 1}',
        "messages[3].tool_call_id": "c",
        "messages[3].content": "result",
        "messages[4].function_call.name": "f",
        "messages[4].function_call.arguments": "{}",
        "prediction.content": "guess",
    }


def test_input_rules_rewrite_and_block() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": f"key {SECRET}"}]}]}
    verdict = moderate_request(ADAPTER, body, CFG)
    assert verdict.changed and body["messages"][0]["content"][0]["text"] == "key [REDACTED]"
    blocked = moderate_request(
        ADAPTER, {"messages": [{"role": "user", "content": "nightingale"}]}, CFG
    )
    assert blocked.blocked is not None and blocked.blocked.param == "messages[0].content"


def test_hits_come_back_with_the_events_naming_their_channel() -> None:
    moderator = ADAPTER.stream({}, CFG)
    steps = [moderator.on_event(data, None) for data in content_events([f"a {SECRET}", " b"])]
    # The key touches the end of the first delta, so it may still grow: undecided there.
    assert all(step.hits == () for step in steps[:2])
    hits = [found for step in steps for found in step.hits]
    assert [(f.channel, f.hit.rule_id) for f in hits] == [("choices[0].content", "secret")]


def test_banned_alternatives_are_removed_from_top_logprobs() -> None:
    entry_lp = token("Hello")
    entry_lp["top_logprobs"].append(
        {"token": " nightingale", "logprob": -3.0, "bytes": list(b" nightingale")}
    )
    events = [chunk([entry({"role": "assistant", "content": ""})])]
    events.append(chunk([entry({"content": "Hello"}, logprobs={"content": [entry_lp]})]))
    events.append(chunk([entry({}, 0, "stop")]))
    out = finish_run(events)
    alternatives = [
        a["token"]
        for c in chunks_of(out)
        for e in c["choices"]
        if e.get("logprobs")
        for t in e["logprobs"]["content"]
        for a in t["top_logprobs"]
    ]
    assert alternatives == ["Hello"]
    assert "ingale" not in visible(out)


def test_logprobs_arriving_before_their_text_still_wait_for_it() -> None:
    tokens = [token(t) for t in ["my ", "sk-AB", "12CD34EF", " ok"]]
    events = [chunk([entry({"role": "assistant", "content": ""})])]
    events.append(chunk([entry({"content": ""}, logprobs={"content": tokens})]))
    for piece in ["my sk-AB", "12CD34EF ok"]:
        events.append(chunk([entry({"content": piece})]))
    events.append(chunk([entry({}, 0, "stop")]))
    out = finish_run(events)
    assert content_of(out) == "my [REDACTED] ok"
    assert logprob_tokens(out) == ["my ", "[REDACTED]", " ok"]
    assert_hidden(out, SECRET)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(alphabet='ab "\\é😀\n\tsk-AB12CD34EF', max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='ab"sk-\\', max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def redacted(value: Any) -> Any:
    """What the rules make of a JSON value: the secret pattern replaced in every string."""
    if isinstance(value, str):
        return re.sub(r"sk-[A-Za-z0-9]{8,}", "[REDACTED]", value)
    if isinstance(value, list):
        return [redacted(v) for v in value]
    if isinstance(value, dict):
        return {redacted(k): redacted(v) for k, v in value.items()}
    return value


@given(value=JSON_VALUES, cuts=st.lists(st.integers(1, 300)), ascii_only=st.booleans())
def test_any_json_arguments_stay_valid_after_redaction(
    value: Any, cuts: list[int], ascii_only: bool
) -> None:
    raw = json.dumps({"v": value, "s": SECRET}, ensure_ascii=ascii_only)
    out = finish_run(tool_events([("f", raw)], cuts))
    args = sdk_final(out).choices[0].message.tool_calls[0].function.arguments
    assert json.loads(args) == redacted({"v": value, "s": SECRET})
    whole = moderate_response(
        completion(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": raw}}
                ],
            }
        ),
        CFG,
    ).body
    assert whole["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == args
    assert_hidden(out, SECRET)


@given(
    texts=st.tuples(PLAIN, PLAIN, PLAIN, PLAIN),
    cuts=st.lists(st.integers(1, 80)),
    order=st.lists(st.booleans(), min_size=60, max_size=60),
)
def test_interleaved_choices_are_moderated_apart(
    texts: tuple[str, str, str, str], cuts: list[int], order: list[bool]
) -> None:
    full = [f"{texts[0]}{SECRET}{texts[1]}", f"{texts[2]}nightingale {texts[3]}"]
    queues = [split(t, cuts) for t in full]
    events = [
        chunk(
            [
                entry({"role": "assistant", "content": ""}, 0),
                entry({"role": "assistant", "content": ""}, 1),
            ]
        )
    ]
    picks = iter(order)
    while any(queues):
        i = int(next(picks, False)) if all(queues) else (0 if queues[0] else 1)
        events.append(chunk([entry({"content": queues[i].pop(0)}, i)]))
    events.append(chunk([entry({}, 0, "stop"), entry({}, 1, "stop")]))
    out = finish_run(events, {"n": 2})
    assert content_of(out, 0) == moderate(CFG, full[0]).text
    assert content_of(out, 1) == texts[2]
    snapshot = sdk_snapshot(out)
    assert [c.finish_reason for c in snapshot.choices] == ["stop", "content_filter"]
    assert_hidden(out, SECRET)
    assert "ingale" not in visible(out)
