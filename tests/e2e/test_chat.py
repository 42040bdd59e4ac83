"""Chat Completions through the gateway with the real openai SDK, across wire chunkings."""

from __future__ import annotations

import json

import openai
import pytest

from tests.e2e.conftest import Stack, reply

SECRET = "sk-Abc123Def456Ghi789"
# Every way the demo can split the same answer: per word, per char, random pieces,
# cut anywhere in the byte stream (inside UTF-8 characters and CRLFs), all in one write.
CHUNKINGS = [
    ("word", "event"),
    ("char", "event"),
    ("random:7", "bytes:11"),
    ("char", "crlf,bytes:3"),
    ("random:3", "coalesce"),
    ("all", "event"),
]


def _content(
    stream: openai.Stream[openai.types.chat.ChatCompletionChunk],
) -> tuple[str, list[str | None]]:
    text, finishes = [], []
    for chunk in stream:
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return "".join(text), finishes


@pytest.mark.parametrize(("chunking", "wire"), CHUNKINGS)
def test_transparent_when_nothing_fires(stack: Stack, chunking: str, wire: str) -> None:
    answer = "Grüße aus Köln — a plain answer with émojis 🎉 and no secrets at all."
    client = stack.client()
    stream = client.chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_headers=reply(answer, chunking, wire),
    )
    assert _content(stream) == (answer, ["stop"])


@pytest.mark.parametrize(("chunking", "wire"), CHUNKINGS)
def test_redacts_secret_whatever_the_split(stack: Stack, chunking: str, wire: str) -> None:
    answer = f"Your key is {SECRET}, keep it safe."
    stream = stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "key?"}],
        stream=True,
        extra_headers=reply(answer, chunking, wire),
    )
    assert _content(stream) == ("Your key is [REDACTED], keep it safe.", ["stop"])


@pytest.mark.parametrize(("chunking", "wire"), CHUNKINGS[:3])
def test_block_ends_with_content_filter(stack: Stack, chunking: str, wire: str) -> None:
    answer = "The plan is called Nightingale and it ships soon."
    stream = stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "plan?"}],
        stream=True,
        extra_headers=reply(answer, chunking, wire),
    )
    assert _content(stream) == ("The plan is called ", ["content_filter"])


def test_stream_helper_raises_content_filter(stack: Stack) -> None:
    client = stack.client()
    with client.chat.completions.stream(
        model="demo-chat",
        messages=[{"role": "user", "content": "plan?"}],
        extra_headers=reply("Codename nightingale, sorry."),
    ) as stream:
        text = "".join(e.delta for e in stream if e.type == "content.delta")
        # Without strict tools or a parsed response_format the helper only raises at the end.
        with pytest.raises(openai.ContentFilterFinishReasonError) as info:
            stream.get_final_completion()
    assert text == "Codename "
    assert info.value.completion.choices[0].message.content == "Codename "


def test_stream_helper_final_completion_is_redacted(stack: Stack) -> None:
    with stack.client().chat.completions.stream(
        model="demo-chat",
        messages=[{"role": "user", "content": "key"}],
        extra_headers=reply(f"use {SECRET} now", "char"),
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert "".join(deltas) == "use [REDACTED] now"
    assert final.choices[0].message.content == "use [REDACTED] now"
    assert final.choices[0].finish_reason == "stop"


def test_cutoff_notice(stack: Stack) -> None:
    stream = stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_headers={**reply("a nightingale sings"), "X-Sluicegate-Policy": "notice"},
    )
    assert _content(stream) == ("a  [stopped]", ["content_filter"])


def test_n2_one_choice_cut_other_goes_on(stack: Stack) -> None:
    stream = stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "x"}],
        n=2,
        stream=True,
        extra_headers=reply(["first nightingale never", f"second {SECRET} fine"], "char"),
    )
    texts: dict[int, str] = {0: "", 1: ""}
    finishes: dict[int, str] = {}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts == {0: "first ", 1: "second [REDACTED] fine"}
    assert finishes == {0: "content_filter", 1: "stop"}


def test_non_streaming_equals_streaming(stack: Stack) -> None:
    answer = f"Key {SECRET} then nightingale and more"
    client = stack.client()
    whole = client.chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "x"}], extra_headers=reply(answer)
    )
    streamed = _content(
        client.chat.completions.create(
            model="demo-chat",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            extra_headers=reply(answer, "char"),
        )
    )
    assert whole.choices[0].message.content == streamed[0] == "Key [REDACTED] then "
    assert whole.choices[0].finish_reason == "content_filter"


def test_tool_call_arguments_stay_valid_json(stack: Stack) -> None:
    args = json.dumps({"note": f"token {SECRET} here", "n": 1})
    spec = {"content": None, "tool_calls": [{"name": "save", "arguments": args}]}
    stream = stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "x"}],
        tools=[
            {"type": "function", "function": {"name": "save", "parameters": {"type": "object"}}}
        ],
        stream=True,
        extra_headers=reply(spec, "char"),
    )
    pieces: list[str] = []
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.arguments:
                    pieces.append(call.function.arguments)
    assert json.loads("".join(pieces)) == {"note": "token [REDACTED] here", "n": 1}


def test_logprobs_never_reveal_redacted_text(stack: Stack) -> None:
    stream = stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "x"}],
        logprobs=True,
        top_logprobs=2,
        stream=True,
        extra_headers=reply(f"my key {SECRET} ok", "char"),
    )
    tokens: list[str] = []
    for chunk in stream:
        for choice in chunk.choices:
            if choice.logprobs and choice.logprobs.content:
                for entry in choice.logprobs.content:
                    tokens.append(entry.token)
                    tokens.extend(t.token for t in entry.top_logprobs)
    assert "".join(tokens).count("Abc123") == 0
    assert "[REDACTED]" in tokens


def test_input_block_rejects_before_upstream(stack: Stack) -> None:
    before = len(stack.demo_state.requests)
    with pytest.raises(openai.BadRequestError) as info:
        stack.client().chat.completions.create(
            model="demo-chat",
            messages=[
                {"role": "system", "content": "be nice"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "tell me a Forbidden Topic"}],
                },
            ],
        )
    assert info.value.code == "content_policy_violation"
    assert info.value.param == "messages[1].content[0].text"
    assert len(stack.demo_state.requests) == before


def test_input_redact_rewrites_body(stack: Stack) -> None:
    stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": f"store {SECRET} please"}],
        extra_headers=reply("ok"),
    )
    sent = stack.demo_state.requests[-1].body
    assert sent["messages"][0]["content"] == "store [REDACTED] please"


def test_unknown_policy_is_400(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        stack.client().chat.completions.create(
            model="demo-chat",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"X-Sluicegate-Policy": "nope"},
        )
    assert info.value.code == "unknown_policy"


def test_upstream_reset_mid_stream_is_an_error(stack: Stack) -> None:
    stream = stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_headers=reply("one two three four five six seven eight", fault="reset"),
    )
    with pytest.raises(openai.APIError):
        _content(stream)


def test_upstream_ending_early_is_an_error(stack: Stack) -> None:
    stream = stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_headers=reply("one two three four five six", fault="truncate"),
    )
    with pytest.raises(openai.APIError):
        _content(stream)


def test_missing_done_after_every_finish_still_completes(stack: Stack) -> None:
    """Every choice said how it ended: only the marker is missing, the answer is whole."""
    stream = stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_headers=reply("one two three", fault="no-done"),
    )
    assert _content(stream) == ("one two three", ["stop"])


def test_upstream_malformed_json_is_an_error(stack: Stack) -> None:
    stream = stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_headers=reply("one two three four", fault="malformed"),
    )
    with pytest.raises(openai.APIError):
        _content(stream)


def test_upstream_http_error_passes_through(stack: Stack) -> None:
    with pytest.raises(openai.InternalServerError):
        stack.client().chat.completions.create(
            model="demo-chat",
            messages=[{"role": "user", "content": "x"}],
            extra_headers=reply("x", fault="http-500"),
        )


def test_disconnect_cancels_upstream(stack: Stack) -> None:
    count = len(stack.demo_state.streams)
    stream = stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_headers=reply(" ".join(["word"] * 400), pace_ms="20"),
    )
    next(iter(stream))
    stream.close()
    assert stack.wait_for(lambda: len(stack.demo_state.streams) > count)
    record = stack.demo_state.streams[count]
    assert stack.wait_for(lambda: record.outcome is not None and record.client_gone)
    assert record.events_written < 400


def test_block_cancels_upstream_at_once(stack: Stack) -> None:
    count = len(stack.demo_state.streams)
    answer = "nightingale " + " ".join(["filler"] * 300)
    stream = stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_headers=reply(answer, pace_ms="10"),
    )
    assert _content(stream) == ("", ["content_filter"])
    record = stack.demo_state.streams[count]
    assert stack.wait_for(lambda: record.client_gone)
    assert record.events_written < 300


async def test_async_client_streams(stack: Stack) -> None:
    client = stack.async_client()
    stream = await client.chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=reply(f"async {SECRET} done", "random:5", "bytes:9"),
    )
    text, usage = "", None
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
        usage = chunk.usage or usage
    assert text == "async [REDACTED] done"
    assert usage is not None
    await client.close()


def test_passthrough_models_and_embeddings(stack: Stack) -> None:
    client = stack.client()
    assert [m.id for m in client.models.list()] == [
        m.id for m in stack.direct_client().models.list()
    ]
    via_gateway = client.embeddings.create(model="demo-embed", input="hello")
    direct = stack.direct_client().embeddings.create(model="demo-embed", input="hello")
    assert via_gateway.data[0].embedding == direct.data[0].embedding


def test_request_id_and_metrics(stack: Stack) -> None:
    raw = stack.client().chat.completions.with_raw_response.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "x"}],
        extra_headers=reply(f"k {SECRET}"),
    )
    assert len(raw.headers["x-sluicegate-request-id"]) == 32
    assert raw.headers["x-request-id"]  # upstream's own headers pass back
    text = stack.metrics_text()
    assert (
        'sluicegate_rule_hits_total{action="redact",direction="output",policy="test",rule="secret"}'
        in text
    )
    assert "sluicegate_requests_total" in text
    assert SECRET not in text


def test_whole_body_arriving_in_several_reads(stack: Stack) -> None:
    out = stack.client().chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "x"}],
        extra_headers=reply(f"slow {SECRET} body", pace_ms="50"),
    )
    assert out.choices[0].message.content == "slow [REDACTED] body"
