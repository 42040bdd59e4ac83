"""The Responses API and legacy Completions through the gateway, with the real openai SDK."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.e2e.conftest import Stack, reply

SECRET = "sk-Abc123Def456Ghi789"
CHUNKINGS = [("word", "event"), ("char", "bytes:5"), ("random:9", "crlf,coalesce")]


def _events(stack: Stack, text: str, chunking: str = "word", wire: str = "event") -> list[object]:
    stream = stack.client().responses.create(
        model="demo-chat", input="x", stream=True, extra_headers=reply(text, chunking, wire)
    )
    return list(stream)


@pytest.mark.parametrize(("chunking", "wire"), CHUNKINGS)
def test_transparent_when_nothing_fires(stack: Stack, chunking: str, wire: str) -> None:
    """Same text and same event structure as upstream when no rule fires.

    Deltas may merge: a character that could begin a match ("n" of "nothing" for the
    test policy's keyword) waits for the next one, and a delta that is all held is not
    sent empty. Everything else, event for event, equals what upstream sent.
    """
    text = "A calm answer — with ünïcode and 🎉, nothing to redact."
    headers = reply(text, chunking, wire)
    direct = list(
        stack.direct_client().responses.create(
            model="demo-chat", input="x", stream=True, extra_headers=headers
        )
    )
    via = list(
        stack.client().responses.create(
            model="demo-chat", input="x", stream=True, extra_headers=headers
        )
    )
    assert _shape(via) == _shape(direct)
    assert _deltas(via) == _deltas(direct) == text
    volatile = {"id", "created_at", "completed_at", "item_id", "sequence_number"}
    others = [_without(e.model_dump(), volatile) for e in via if not _is_delta(e)]
    assert others == [_without(e.model_dump(), volatile) for e in direct if not _is_delta(e)]


def _is_delta(event: object) -> bool:
    return getattr(event, "type", "") == "response.output_text.delta"


def _deltas(events: list[object]) -> str:
    return "".join(e.delta for e in events if _is_delta(e))  # type: ignore[attr-defined]


def _shape(events: list[object]) -> list[str]:
    """Event types with runs of deltas collapsed to one."""
    shape: list[str] = []
    for event in events:
        kind = getattr(event, "type", "")
        if not (shape and kind == shape[-1] == "response.output_text.delta"):
            shape.append(kind)
    return shape


def _without(value: object, keys: set[str]) -> object:
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


@pytest.mark.parametrize(("chunking", "wire"), CHUNKINGS)
def test_redaction_reaches_every_repeating_event(stack: Stack, chunking: str, wire: str) -> None:
    events = _events(stack, f"the key {SECRET} is here", chunking, wire)
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")  # type: ignore[attr-defined]
    assert deltas == "the key [REDACTED] is here"
    by_type = {e.type: e for e in events}
    assert by_type["response.output_text.done"].text == deltas  # type: ignore[attr-defined]
    assert by_type["response.content_part.done"].part.text == deltas  # type: ignore[attr-defined]
    item = by_type["response.output_item.done"].item  # type: ignore[attr-defined]
    assert item.content[0].text == deltas
    assert by_type["response.completed"].response.output_text == deltas  # type: ignore[attr-defined]
    numbers = [e.sequence_number for e in events]  # type: ignore[attr-defined]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def test_block_ends_incomplete_and_helper_raises(stack: Stack) -> None:
    with stack.client().responses.stream(
        model="demo-chat", input="x", extra_headers=reply("plans for nightingale soon", "char")
    ) as stream:
        events = list(stream)
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()
    assert events[-1].type == "response.incomplete"
    final = events[-1].response  # type: ignore[union-attr]
    assert final.status == "incomplete"
    assert final.incomplete_details.reason == "content_filter"
    assert final.output_text == "plans for "
    done = [e for e in events if e.type == "response.output_text.done"]
    assert [e.text for e in done] == ["plans for "]  # type: ignore[attr-defined]


def test_function_call_arguments_redacted_and_valid(stack: Stack) -> None:
    args = json.dumps({"token": f"use {SECRET}", "n": 2})
    spec = {"content": None, "tool_calls": [{"name": "save", "arguments": args}]}
    events = list(
        stack.client().responses.create(
            model="demo-chat",
            input="x",
            tools=[{"type": "function", "name": "save", "parameters": {"type": "object"}}],
            stream=True,
            extra_headers=reply(spec, "char"),
        )
    )
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert json.loads(done.arguments) == {"token": "use [REDACTED]", "n": 2}  # type: ignore[attr-defined]
    final = events[-1].response  # type: ignore[union-attr]
    assert json.loads(final.output[0].arguments) == {"token": "use [REDACTED]", "n": 2}


def test_non_streaming_equals_streaming(stack: Stack) -> None:
    text = f"first {SECRET} then nightingale"
    whole = stack.client().responses.create(model="demo-chat", input="x", extra_headers=reply(text))
    events = _events(stack, text, "char")
    assert whole.status == "incomplete"
    assert whole.incomplete_details is not None
    assert whole.incomplete_details.reason == "content_filter"
    assert whole.output_text == events[-1].response.output_text == "first [REDACTED] then "  # type: ignore[attr-defined]


def test_input_checked_like_chat(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        stack.client().responses.create(
            model="demo-chat",
            instructions="be brief",
            input=[
                {"role": "user", "content": [{"type": "input_text", "text": "a forbidden topic"}]}
            ],
        )
    assert info.value.code == "content_policy_violation"
    assert info.value.param == "input[0].content[0].text"
    stack.client().responses.create(
        model="demo-chat", input=f"remember {SECRET}", extra_headers=reply("ok")
    )
    assert stack.demo_state.requests[-1].body["input"] == "remember [REDACTED]"


@pytest.mark.parametrize(("chunking", "wire"), CHUNKINGS)
def test_legacy_completions_stream(stack: Stack, chunking: str, wire: str) -> None:
    stream = stack.client().completions.create(
        model="demo-chat",
        prompt="x",
        stream=True,
        logprobs=1,
        extra_headers=reply(f"legacy {SECRET} text nightingale tail", chunking, wire),
    )
    text, finishes, tokens = "", [], []
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.text
            if choice.logprobs and choice.logprobs.tokens:
                tokens.extend(choice.logprobs.tokens)
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert text == "legacy [REDACTED] text "
    assert finishes == ["content_filter"]
    assert "".join(tokens) == text


def test_legacy_completions_whole(stack: Stack) -> None:
    out = stack.client().completions.create(
        model="demo-chat", prompt="x", extra_headers=reply(f"legacy {SECRET} ok")
    )
    assert out.choices[0].text == "legacy [REDACTED] ok"
    assert out.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("chat/completions", {"messages": [{"role": "user", "content": "x"}], "logprobs": True}),
        ("responses", {"input": "x"}),
        ("completions", {"prompt": "x", "logprobs": 2}),
    ],
)
@pytest.mark.parametrize(("chunking", "wire"), CHUNKINGS)
def test_raw_bytes_never_carry_redacted_text(
    stack: Stack, route: str, body: dict[str, object], chunking: str, wire: str
) -> None:
    """Whatever repeats text (done events, final objects, logprobs), the secret is gone."""
    with httpx.stream(
        "POST",
        f"{stack.gateway_url}/{route}",
        headers=reply(f"a {SECRET} b {SECRET} c", chunking, wire),
        json={"model": "demo-chat", "stream": True, **body},
    ) as response:
        raw = b"".join(response.iter_raw())
    assert b"[REDACTED]" in raw
    for fragment in (b"Abc123", b"Def456", b"Ghi789"):
        assert fragment not in raw
