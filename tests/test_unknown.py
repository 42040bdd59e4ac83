"""Default deny for output: what no adapter knows is moderated, never passed.

The properties plant a secret in a member no adapter knows, at any depth, as a string
or as a member name, split across events where the API streams deltas, and check that
no piece of it reaches the client while the stream stays valid for the SDK.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai._models import construct_type
from openai._types import omit
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import ResponseStreamEvent

from gateway.adapters import ADAPTERS
from gateway.adapters.unknown import (
    STRUCTURAL,
    Unknown,
    blank,
    carries_text,
    key_is_safe,
    place,
    structural,
)
from tests.adapter_support import CFG, SECRET, STREAMED_TOOLS

CHAT = ADAPTERS["/v1/chat/completions"]
RESPONSES = ADAPTERS["/v1/responses"]
COMPLETIONS = ADAPTERS["/v1/completions"]

#: Member names no adapter knows (and none of the structural ones).
_KNOWN = {
    "content", "refusal", "reasoning", "reasoning_content", "tool_calls", "function_call",
    "audio", "role", "index", "delta", "logprobs", "finish_reason", "choices", "usage",
    "error", "text", "message", "output", "output_text", "response", "item", "part",
    "sequence_number", "output_index", "content_index", "summary_index", "annotations",
}  # fmt: skip
KEYS = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(
    lambda k: k not in STRUCTURAL and k not in _KNOWN
)
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text("abc xyz.,", max_size=6))
STEPS = st.lists(st.one_of(KEYS, st.just(0)), min_size=1, max_size=3)


def nest(steps: Sequence[str | int], leaf: Any, siblings: dict[str, Any]) -> Any:
    """A value with ``leaf`` at ``steps`` (``0`` is a list position), and some siblings."""
    value = leaf
    for step in reversed(steps):
        # List entries carry an index, as the SDK's delta accumulation requires of them.
        value = [{"index": 0, "v": value}] if step == 0 else {step: value}
    if isinstance(value, dict):
        value = {**siblings, **value}
    return value


def pieces(text: str) -> list[str]:
    """Every 8-character piece of ``text``: none may reach the client."""
    return [text[i : i + 8] for i in range(len(text) - 7)]


def assert_hidden(out: Sequence[str], secret: str = SECRET) -> None:
    for data in out:
        for piece in pieces(secret):
            assert piece not in data, f"{piece!r} leaked in {data}"


# -- the pieces ---------------------------------------------------------------------------


def test_structural_values_pass_by_shape_and_only_when_clean() -> None:
    assert structural(CFG, "id", "chatcmpl-123")
    assert structural(CFG, "model", "meta-llama/Llama-3.1-8B-Instruct")
    assert not structural(CFG, "id", "two words")  # not the shape: moderated as text
    assert not structural(CFG, "id", SECRET)  # the shape, but a rule fires on it
    assert not structural(CFG, "note", "anything")  # not a structural key at all


def test_member_names_must_be_identifiers_and_clean() -> None:
    assert key_is_safe(CFG, "reasoning_details")
    assert not key_is_safe(CFG, "two words")
    assert not key_is_safe(CFG, SECRET)


def test_unknown_values_are_moderated_whole_and_hits_come_back() -> None:
    unknown = Unknown(CFG, "envelope")
    value = {"note": f"a {SECRET} b", "n": 3, SECRET: "x", "list": [f"{SECRET}", None]}
    assert unknown.value(value) == {"note": "a [REDACTED] b", "n": 3, "list": ["[REDACTED]", None]}
    assert [found.channel for found in unknown.hits] == ["envelope", "envelope"]


def test_a_block_in_an_unknown_value_keeps_what_precedes_it() -> None:
    unknown = Unknown(CFG, "envelope")
    assert unknown.value({"m": "fine, then nightingale sings"}) == {"m": "fine, then "}
    assert unknown.cut


def test_unknown_drop_sends_structure_and_no_unknown_text() -> None:
    dropping = dataclasses.replace(CFG, drop_unknown=True)
    value = {"id": "x1", "note": "harmless", "list": ["a", 2]}
    assert Unknown(dropping, "envelope").value(value) == {"id": "x1", "note": "", "list": ["", 2]}
    moderator = CHAT.stream({}, dropping)
    events = [
        _chunk({"role": "assistant", "content": "hi"}),
        _chunk({"reasoning_details": [{"type": "reasoning.text", "text": "why", "index": 0}]}),
        _chunk({}, "stop"),
    ]
    out = [orjson.loads(o.data) for e in events for o in moderator.on_event(e, None).events]
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "content": "hi"}
    assert out[1]["choices"][0]["delta"]["reasoning_details"] == [
        {"type": "reasoning.text", "text": "", "index": 0}
    ]


def test_blank_keeps_structure_and_place_appends_where_a_client_expects_it() -> None:
    frame = blank([{"type": "reasoning.text", "text": "abc", "index": 0}])
    assert frame == [{"type": "reasoning.text", "text": "", "index": 0}]
    delta: dict[str, Any] = {"reasoning_details": frame}
    place(delta, ("reasoning_details", 0, "text"), "rest")
    assert delta == {"reasoning_details": [{"type": "reasoning.text", "text": "rest", "index": 0}]}
    empty: dict[str, Any] = {}
    place(empty, ("a", 1, "b"), "x")
    assert empty == {"a": [{}, {"b": "x"}]}


def test_carries_text_ignores_structure() -> None:
    assert not carries_text({"type": "text", "id": "x1", "n": 2, "list": [None, True]})
    assert carries_text({"type": "text", "note": "hi"})


# -- chat ---------------------------------------------------------------------------------

_ENVELOPE = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def _chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> str:
    entry = {"index": 0, "delta": delta, "finish_reason": finish, **more}
    return orjson.dumps({**_ENVELOPE, "choices": [entry]}).decode()


def _chat(events: Sequence[str]) -> list[str]:
    moderator = CHAT.stream({}, CFG)
    out = [o.data for e in [*events, "[DONE]"] for o in moderator.on_event(e, None).events]
    assert out[-1] == "[DONE]" and moderator.finished
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for data in out[:-1]:
        state.handle_chunk(construct_type(type_=ChatCompletionChunk, value=orjson.loads(data)))
    return out


@given(steps=STEPS, siblings=st.dictionaries(KEYS, LEAVES, max_size=3), cut=st.integers(1, 12))
def test_a_secret_split_across_deltas_of_an_unknown_member_never_leaks(
    steps: list[str | int], siblings: dict[str, Any], cut: int
) -> None:
    text = f"see {SECRET} now"
    first, second = text[: cut + 4], text[cut + 4 :]
    key = steps[0] if isinstance(steps[0], str) else "extra"
    events = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({key: nest(steps[1:], first, siblings)}),
        _chunk({key: nest(steps[1:], second, siblings)}),
        _chunk({}, "stop"),
    ]
    out = _chat(events)
    assert_hidden(out)
    assert "[REDACTED]" in "".join(out)


@given(
    steps=STEPS,
    siblings=st.dictionaries(KEYS, LEAVES, max_size=3),
    where=st.sampled_from(["chunk", "entry", "delta"]),
    as_name=st.booleans(),
)
def test_a_secret_anywhere_in_an_unknown_member_or_its_name_never_leaks(
    steps: list[str | int], siblings: dict[str, Any], where: str, as_name: bool
) -> None:
    leaf: Any = {SECRET: 1} if as_name else f"x {SECRET} y"
    value = nest(steps, leaf, siblings)
    extra = value if isinstance(value, dict) else {"extra": value}
    if where == "chunk":
        planted = orjson.dumps({**orjson.loads(_chunk({"content": "hi"})), **extra}).decode()
    elif where == "entry":
        planted = _chunk({"content": "hi"}, **extra)
    else:
        planted = _chunk({"content": "hi", **extra})
    out = _chat([_chunk({"role": "assistant", "content": ""}), planted, _chunk({}, "stop")])
    assert_hidden(out)


def test_duplicate_keys_send_the_parse_that_was_moderated() -> None:
    raw = _chunk({"content": f"a {SECRET}"})[:-1] + ',"choices":null}'
    out = _chat([_chunk({"role": "assistant", "content": ""}), raw, _chunk({}, "stop")])
    assert_hidden(out)


def test_an_error_beside_choices_is_moderated_and_ends_the_stream() -> None:
    moderator = CHAT.stream({}, CFG)
    moderator.on_event(_chunk({"role": "assistant", "content": "held sk-AB"}), None)
    event = {**_ENVELOPE, "choices": [], "error": {"message": f"failed on {SECRET}"}}
    out = moderator.on_event(orjson.dumps(event).decode(), None)
    assert moderator.finished
    [data] = [o.data for o in out.events]
    assert orjson.loads(data)["error"] == {"message": "failed on [REDACTED]"}
    assert_hidden([data])


def test_a_logprob_token_that_differs_from_its_bytes_is_respelled() -> None:
    lie = {"token": SECRET, "logprob": -0.1, "bytes": list(b"hi"), "top_logprobs": []}
    out = _chat(
        [
            _chunk({"role": "assistant", "content": ""}),
            _chunk({"content": "hi"}, logprobs={"content": [lie], "refusal": None}),
            _chunk({}, "stop"),
        ]
    )
    assert_hidden(out)
    tokens = [
        e["token"]
        for data in out[:-1]
        for choice in orjson.loads(data)["choices"]
        for e in ((choice.get("logprobs") or {}).get("content") or [])
    ]
    assert tokens == ["hi"]


# -- responses ----------------------------------------------------------------------------


def _responses(events: Sequence[dict[str, Any]]) -> list[str]:
    moderator = RESPONSES.stream({}, CFG)
    out = []
    for seq, event in enumerate(events):
        event = {**event, "sequence_number": seq}
        out += [
            o.data for o in moderator.on_event(orjson.dumps(event).decode(), event["type"]).events
        ]
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for data in out:
        parsed = construct_type(type_=ResponseStreamEvent, value=orjson.loads(data))  # type: ignore[arg-type]
        state.handle_event(parsed)
    return out


def _response(status: str, output: list[Any]) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "status": status, "output": output}


@given(cut=st.integers(1, 12))
def test_an_unknown_item_type_and_its_delta_events_never_leak(cut: int) -> None:
    command = f"echo {SECRET} done"
    item = {"type": "shell_call", "id": "sh_1", "status": "in_progress", "action": {"commands": []}}
    done = {**item, "status": "completed", "action": {"commands": [command]}}
    parts = [command[: cut + 5], command[cut + 5 :]]
    events = [
        {"type": "response.created", "response": _response("in_progress", [])},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        *(
            {
                "type": "response.shell_call_command.delta",
                "output_index": 0,
                "item_id": "sh_1",
                "delta": p,
            }
            for p in parts
        ),
        {
            "type": "response.shell_call_command.done",
            "output_index": 0,
            "item_id": "sh_1",
            "command": command,
        },
        {"type": "response.output_item.done", "output_index": 0, "item": done},
        {"type": "response.completed", "response": _response("completed", [done])},
    ]
    out = _responses(events)
    assert_hidden(out)
    deltas = [orjson.loads(d)["delta"] for d in out if "shell_call_command.delta" in d]
    assert "".join(deltas) == "echo [REDACTED] done"
    completed = orjson.loads(out[-1])["response"]["output"][0]["action"]["commands"]
    assert completed == ["echo [REDACTED] done"]


def test_an_item_without_an_integer_output_index_is_moderated() -> None:
    item = {"type": "mcp_call", "id": "m1", "output": f"the key is {SECRET}", "status": "completed"}
    out = _responses(
        [
            {"type": "response.created", "response": _response("in_progress", [])},
            {"type": "response.output_item.done", "output_index": "0", "item": item},
        ]
    )
    assert_hidden(out)


def test_non_streamed_responses_moderate_unknown_items_and_members() -> None:
    body = _response(
        "completed",
        [{"type": "apply_patch_call", "id": "p1", "operation": {"diff": f"+{SECRET}\n"}}],
    )
    body["note"] = f"also {SECRET}"
    moderated = RESPONSES.moderate_response(body, CFG)
    assert_hidden([orjson.dumps(moderated.body).decode()])
    assert len(moderated.hits) == 2


# -- legacy completions -------------------------------------------------------------------


def test_legacy_completions_moderate_unknown_choice_members() -> None:
    chunk = {
        "id": "cmpl-1",
        "object": "text_completion",
        "choices": [{"index": 0, "text": "hi", "finish_reason": "stop", "extra": SECRET}],
    }
    moderator = COMPLETIONS.stream({}, CFG)
    out = [o.data for o in moderator.on_event(orjson.dumps(chunk).decode(), None).events]
    out += [o.data for o in moderator.on_event("[DONE]", None).events]
    assert_hidden(out)
    body = COMPLETIONS.moderate_response(
        {**chunk, "choices": [{**chunk["choices"][0], "logprobs": {"extra": SECRET}}]}, CFG
    )
    assert_hidden([orjson.dumps(body.body).decode()])


# -- found in review ----------------------------------------------------------------------


def _final(out: Sequence[str]) -> Any:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for data in out[:-1]:
        state.handle_chunk(construct_type(type_=ChatCompletionChunk, value=orjson.loads(data)))
    return state.current_completion_snapshot


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"audio": {"id": "a1", "data": "sk-AB12"}}, {"audio": {"data": "CD34EF"}}),
        ({"audio": {"id": "sk-AB12"}}, {"audio": {"id": "CD34EF"}}),
        (
            {"function_call": {"name": "sk-AB12", "arguments": ""}},
            {"function_call": {"name": "CD34EF"}},
        ),
    ],
)
def test_members_a_client_joins_are_joined_before_they_are_judged(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    out = _chat([_chunk({"role": "assistant", **first}), _chunk(second), _chunk({}, "stop")])
    assert_hidden(out)
    assert SECRET not in _final(out).model_dump_json()


def test_streamed_tool_call_members_are_joined_before_they_are_judged() -> None:
    head = {"index": 0, "id": "c1", "type": "function", "x": "sk-AB12"}
    head["function"] = {"name": "f", "arguments": "", "y": "sk-AB12"}
    rest = {"index": 0, "x": "CD34EF", "function": {"y": "CD34EF"}}
    moderator = CHAT.stream({}, STREAMED_TOOLS)
    events = [
        _chunk({"role": "assistant", "tool_calls": [head]}),
        _chunk({"tool_calls": [rest]}),
        _chunk({}, "tool_calls"),
        "[DONE]",
    ]
    out = [o.data for e in events for o in moderator.on_event(e, None).events]
    joined = "".join(out)
    assert SECRET not in joined.replace('","', "")  # however a client joins the pieces
    assert "[REDACTED]" in joined


@pytest.mark.parametrize("delta", ["sk-AB12CD34EF", ["sk-AB12CD34EF"], 5])
def test_a_delta_that_is_not_an_object_carries_nothing_out(delta: Any) -> None:
    out = _chat([_chunk({"role": "assistant", "content": ""}), _chunk(delta), _chunk({}, "stop")])  # type: ignore[arg-type]
    assert_hidden(out)


@pytest.mark.parametrize(
    "event",
    [
        {"type": "response.output_item.added", "output_index": 0, "item": {"type": {}}},
        {"type": "response.output_item.done", "output_index": 0, "item": {"type": ["x"]}},
        {
            "type": "response.completed",
            "response": {
                "output": [{"type": "message", "content": [{"type": "output_text", "text": None}]}],
                "output_text": "",
            },
        },
    ],
)
def test_odd_responses_shapes_never_raise(event: dict[str, Any]) -> None:
    RESPONSES.stream({}, CFG).on_event(orjson.dumps(event).decode(), event["type"])
    if event["type"] == "response.completed":
        RESPONSES.moderate_response(event["response"], CFG)


def test_odd_chat_and_legacy_shapes_never_raise() -> None:
    CHAT.stream({}, CFG).on_event(_chunk({"role": []}), None)  # type: ignore[dict-item]
    COMPLETIONS.moderate_response({"choices": 5}, CFG)
