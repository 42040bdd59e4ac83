"""The demo upstream, driven over real loopback HTTP by the official ``openai`` SDK.

The SDK is the judge of wire validity: if its parsers and stream helpers rebuild exactly the
scripted text, the demo is a faithful stand-in for a real upstream. Raw aiohttp clients are
used only where the SDK hides what matters (write boundaries, error bodies, headers).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.demo import (
    BILLING,
    DEMO_STATE,
    SECRETS,
    TOUR,
    DemoState,
    StreamOutcome,
    create_demo_app,
)
from gateway.demo.scripts import TOOL_ARGUMENTS

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

# Multi-byte characters of every length, a CRLF, and runs of spaces: the hard cases.
TRICKY = "Grüße — naïve café ✓ 🙂\r\nsecond  line,\ttabbed;   spaced out "
USER = [{"role": "user", "content": "hello"}]
STRICT_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "send_email",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"to": {"type": "string"}, "body": {"type": "string"}},
            "required": ["to", "body"],
            "additionalProperties": False,
        },
    },
}


def reply(value: object) -> dict[str, str]:
    """``X-Demo-Reply``: json.dumps escapes non-ASCII, as header values must be ASCII."""
    return {"X-Demo-Reply": json.dumps(value)}


@pytest.fixture
async def server(aiohttp_server: ServerFactory) -> TestServer:
    return await aiohttp_server(create_demo_app())


@pytest.fixture
def state(server: TestServer) -> DemoState:
    return server.app[DEMO_STATE]


@pytest.fixture
async def client(server: TestServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=str(server.make_url("/v1")), api_key="x", max_retries=0
    ) as sdk:
        yield sdk


async def chat_chunks(
    client: openai.AsyncOpenAI, headers: dict[str, str] | None = None, **params: Any
) -> list[Any]:
    params.setdefault("messages", USER)
    stream = await client.chat.completions.create(
        model="demo-chat", stream=True, extra_headers=headers, **params
    )
    return [chunk async for chunk in stream]


def contents(chunks: list[Any], index: int = 0) -> list[str]:
    return [
        choice.delta.content
        for chunk in chunks
        for choice in chunk.choices
        if choice.index == index and choice.delta.content
    ]


# --- Chat Completions ---------------------------------------------------------------------


@pytest.mark.parametrize("chunking", ["word", "char", "random:7", "random:99", "all"])
@pytest.mark.parametrize("text", [TOUR, TRICKY], ids=["tour", "tricky"])
async def test_chat_stream_reassembles_text_under_every_chunking(
    client: openai.AsyncOpenAI, chunking: str, text: str
) -> None:
    chunks = await chat_chunks(client, {**reply(text), "X-Demo-Chunking": chunking})

    pieces = contents(chunks)
    assert "".join(pieces) == text
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert all(chunk.id.startswith("chatcmpl-") for chunk in chunks)
    roles = [c.choices[0].delta.role for c in chunks]
    assert roles[0] == "assistant"
    assert not any(roles[1:])
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert not any(c.choices[0].finish_reason for c in chunks[:-1])
    if chunking == "char":
        assert pieces == list(text)
    if chunking == "all":
        assert pieces == [text]


async def test_repeat_streams_the_content_that_many_times(client: openai.AsyncOpenAI) -> None:
    chunks = await chat_chunks(client, {**reply("one two "), "X-Demo-Repeat": "3"})

    assert "".join(contents(chunks)) == "one two " * 3


async def test_chat_word_chunks_split_before_spaces(client: openai.AsyncOpenAI) -> None:
    chunks = await chat_chunks(client, reply("one two  three"))

    assert contents(chunks) == ["one", " two", "  three"]


@pytest.mark.parametrize(
    ("prompt", "script"),
    [("hi there", TOUR), ("show me the secret keys", SECRETS), ("charge my CARD", BILLING)],
)
async def test_default_script_follows_last_user_message(
    client: openai.AsyncOpenAI, prompt: str, script: str
) -> None:
    messages = [
        {"role": "user", "content": "card"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": prompt}]},
    ]

    chunks = await chat_chunks(client, messages=messages)

    assert "".join(contents(chunks)) == script


def test_scripts_show_every_kind_of_moderation() -> None:
    for script in (TOUR, SECRETS, BILLING):
        assert "project nightingale" in script.lower()
        assert script.lower().index("project nightingale") > len(script) // 2
        assert any(ord(char) > 127 for char in script)
    assert all(marker in TOUR for marker in ("sk-proj-", "@example.com", "4111 1111 1111 1111"))


async def test_chat_stream_helper_final_completion(client: openai.AsyncOpenAI) -> None:
    async with client.chat.completions.stream(model="demo-chat", messages=USER) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_completion()

    assert final.choices[0].message.content == TOUR
    assert final.choices[0].message.role == "assistant"
    assert final.choices[0].finish_reason == "stop"
    assert kinds.count("content.done") == 1


async def test_chat_n2_interleaves_choices(client: openai.AsyncOpenAI) -> None:
    texts = ["first answer, ✓", "second — longer answer here"]

    chunks = await chat_chunks(client, reply(texts), n=2)
    async with client.chat.completions.stream(
        model="demo-chat", messages=USER, n=2, extra_headers=reply(texts)
    ) as stream:
        final = await stream.get_final_completion()

    assert ["".join(contents(chunks, i)) for i in (0, 1)] == texts
    first_seen = list(dict.fromkeys(c.choices[0].index for c in chunks))
    assert first_seen == [0, 1]
    assert [c.choices[0].index for c in chunks[:4]] == [0, 1, 0, 1]
    assert [choice.message.content for choice in final.choices] == texts


async def test_chat_reply_list_must_match_n(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await chat_chunks(client, reply(["only one"]), n=2)

    assert caught.value.param == "X-Demo-Reply"


async def test_chat_tool_call_arguments_stream_in_pieces(client: openai.AsyncOpenAI) -> None:
    arguments = json.dumps({"to": "ana@example.com", "body": "Grüße ✓"})
    headers = {
        **reply({"tool_calls": [{"name": "send_email", "arguments": arguments}]}),
        "X-Demo-Chunking": "random:3",
    }

    chunks = await chat_chunks(client, headers, tools=[STRICT_TOOL])
    async with client.chat.completions.stream(
        model="demo-chat", messages=USER, tools=[STRICT_TOOL], extra_headers=headers
    ) as stream:
        final = await stream.get_final_completion()

    calls = [call for c in chunks for call in c.choices[0].delta.tool_calls or []]
    assert len(calls) > 2
    assert all(call.function is not None for call in calls)
    assert calls[0].id is not None
    assert calls[0].type == "function"
    assert calls[0].function.name == "send_email"
    assert all(call.id is None and call.function.name is None for call in calls[1:])
    assert "".join(call.function.arguments for call in calls) == arguments
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    message = final.choices[0].message
    assert message.tool_calls[0].function.arguments == arguments
    assert message.tool_calls[0].function.parsed_arguments == json.loads(arguments)


async def test_chat_offered_tools_get_called_by_default(client: openai.AsyncOpenAI) -> None:
    completion = await client.chat.completions.create(
        model="demo-chat", messages=USER, tools=[STRICT_TOOL]
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls[0].function.name == "send_email"
    assert choice.message.tool_calls[0].function.arguments == TOOL_ARGUMENTS


async def test_chat_refusal_streams_as_refusal(client: openai.AsyncOpenAI) -> None:
    headers = reply({"refusal": "I can't help — sorry."})

    async with client.chat.completions.stream(
        model="demo-chat", messages=USER, extra_headers=headers
    ) as stream:
        final = await stream.get_final_completion()

    assert final.choices[0].message.refusal == "I can't help — sorry."
    assert final.choices[0].message.content is None


@pytest.mark.parametrize("chunking", ["word", "char", "random:5"])
async def test_chat_logprobs_agree_with_the_text(client: openai.AsyncOpenAI, chunking: str) -> None:
    headers = {**reply(TRICKY), "X-Demo-Chunking": chunking}

    chunks = await chat_chunks(client, headers, logprobs=True, top_logprobs=3)
    completion = await client.chat.completions.create(
        model="demo-chat", messages=USER, logprobs=True, top_logprobs=3, extra_headers=headers
    )

    for chunk in chunks:
        choice = chunk.choices[0]
        if choice.delta.content:
            assert "".join(lp.token for lp in choice.logprobs.content) == choice.delta.content
    streamed = [lp for c in chunks if c.choices[0].logprobs for lp in c.choices[0].logprobs.content]
    whole = completion.choices[0].logprobs.content
    for tokens in (streamed, whole):
        assert "".join(lp.token for lp in tokens) == TRICKY
        for lp in tokens:
            assert bytes(lp.bytes) == lp.token.encode()
            assert len(lp.top_logprobs) == 3
            assert lp.top_logprobs[0].token == lp.token
            assert lp.top_logprobs[0].logprob == lp.logprob
            assert all(alt.bytes == list(alt.token.encode()) for alt in lp.top_logprobs)
    assert [lp.token for lp in streamed] == [lp.token for lp in whole]


async def test_chat_usage_chunk_comes_last(client: openai.AsyncOpenAI) -> None:
    chunks = await chat_chunks(client, stream_options={"include_usage": True})
    completion = await client.chat.completions.create(model="demo-chat", messages=USER)

    assert chunks[-1].choices == []
    assert chunks[-1].usage == completion.usage
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert completion.usage.completion_tokens > 0


async def test_chat_without_include_usage_has_no_usage_chunk(
    client: openai.AsyncOpenAI,
) -> None:
    chunks = await chat_chunks(client)

    assert all(chunk.choices for chunk in chunks)


async def test_chat_non_stream_matches_stream(client: openai.AsyncOpenAI) -> None:
    headers = {**reply(["a — b", TRICKY]), "X-Demo-Chunking": "random:1"}

    completion = await client.chat.completions.create(
        model="demo-chat", messages=USER, n=2, extra_headers=headers
    )
    chunks = await chat_chunks(client, headers, n=2)

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert [c.message.content for c in completion.choices] == ["a — b", TRICKY]
    assert ["".join(contents(chunks, i)) for i in (0, 1)] == ["a — b", TRICKY]
    assert {c.finish_reason for c in completion.choices} == {"stop"}
    assert completion.usage.total_tokens > completion.usage.completion_tokens


# --- Responses ------------------------------------------------------------------------------

RESPONSE_SEQUENCE = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.mark.parametrize("chunking", ["word", "char", "random:11"])
async def test_responses_stream_event_sequence(client: openai.AsyncOpenAI, chunking: str) -> None:
    headers = {**reply(TRICKY), "X-Demo-Chunking": chunking}

    stream = await client.responses.create(
        model="demo-chat", input="hello", stream=True, extra_headers=headers
    )
    events = [event async for event in stream]

    kinds = list(dict.fromkeys(event.type for event in events))
    assert kinds == RESPONSE_SEQUENCE
    numbers = [event.sequence_number for event in events]
    assert numbers == sorted(set(numbers))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == TRICKY
    done = {e.type: e for e in events}
    assert done["response.output_text.done"].text == TRICKY
    assert done["response.content_part.done"].part.text == TRICKY
    assert done["response.output_item.done"].item.content[0].text == TRICKY
    final = done["response.completed"].response
    assert final.status == "completed"
    assert final.output_text == TRICKY
    assert {e.response.id for e in events if hasattr(e, "response")} == {final.id}


async def test_responses_sends_event_lines_and_no_output_text(
    server: TestServer,
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            server.make_url("/v1/responses"),
            json={"model": "demo-chat", "input": "hi", "stream": True},
        ) as response,
    ):
        body = (await response.read()).decode()

    blocks = [block for block in body.split("\n\n") if block]
    for block in blocks:
        event_line, data_line = block.split("\n")
        payload = json.loads(data_line.removeprefix("data: "))
        assert event_line == f"event: {payload['type']}"
        assert "output_text" not in payload.get("response", {})
    assert "[DONE]" not in body


async def test_responses_stream_helper_final_response(client: openai.AsyncOpenAI) -> None:
    async with client.responses.stream(model="demo-chat", input="the card please") as stream:
        deltas = [
            event.delta async for event in stream if event.type == "response.output_text.delta"
        ]
        final = await stream.get_final_response()

    assert "".join(deltas) == BILLING
    assert final.output_text == BILLING
    assert final.status == "completed"
    assert final.usage is not None
    assert final.usage.output_tokens > 0


async def test_responses_function_call(client: openai.AsyncOpenAI) -> None:
    tool: Any = {
        "type": "function",
        "name": "send_email",
        "strict": True,
        "parameters": STRICT_TOOL["function"]["parameters"],
    }
    arguments = json.dumps({"to": "ana@example.com", "body": "hi ✓"})
    headers = {
        **reply(
            {
                "content": "Sending now.",
                "tool_calls": [{"name": "send_email", "arguments": arguments}],
            }
        ),
        "X-Demo-Chunking": "char",
    }

    async with client.responses.stream(
        model="demo-chat", input="mail ana", tools=[tool], extra_headers=headers
    ) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()

    pieces = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert pieces == list(arguments)
    assert [item.type for item in final.output] == ["message", "function_call"]
    call = final.output[1]
    assert call.arguments == arguments
    assert call.name == "send_email"
    assert call.parsed_arguments == json.loads(arguments)
    assert final.output_text == "Sending now."


async def test_responses_logprobs_when_included(client: openai.AsyncOpenAI) -> None:
    stream = await client.responses.create(
        model="demo-chat",
        input="hello",
        stream=True,
        include=["message.output_text.logprobs"],
        top_logprobs=2,
        extra_headers=reply(TRICKY),
    )
    events = [event async for event in stream]

    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert all("".join(lp.token for lp in e.logprobs) == e.delta for e in deltas)
    part = events[-1].response.output[0].content[0]
    assert "".join(lp.token for lp in part.logprobs) == TRICKY
    assert all(len(lp.top_logprobs) == 2 for lp in part.logprobs)


async def test_responses_non_stream(client: openai.AsyncOpenAI) -> None:
    response = await client.responses.create(
        model="demo-chat",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "secret?"}]}],
    )

    assert response.status == "completed"
    assert response.output_text == SECRETS
    assert response.id.startswith("resp_")


# --- Legacy Completions and the rest -------------------------------------------------------


async def test_legacy_completions_stream_and_logprobs(client: openai.AsyncOpenAI) -> None:
    headers = {**reply(TRICKY), "X-Demo-Chunking": "random:4"}

    stream = await client.completions.create(
        model="demo-chat", prompt="hi", stream=True, logprobs=2, extra_headers=headers
    )
    chunks = [chunk async for chunk in stream]
    whole = await client.completions.create(
        model="demo-chat", prompt="hi", logprobs=2, extra_headers=headers
    )

    assert {chunk.object for chunk in chunks} == {"text_completion"}
    assert "".join(c.choices[0].text for c in chunks) == TRICKY
    assert chunks[-1].choices[0].finish_reason == "stop"
    tokens = [t for c in chunks if c.choices[0].logprobs for t in c.choices[0].logprobs.tokens]
    offsets = [
        o for c in chunks if c.choices[0].logprobs for o in c.choices[0].logprobs.text_offset
    ]
    logprobs = whole.choices[0].logprobs
    assert whole.choices[0].text == TRICKY
    assert tokens == logprobs.tokens
    assert offsets == logprobs.text_offset
    assert [TRICKY[o : o + len(t)] for t, o in zip(tokens, offsets, strict=True)] == tokens
    assert all(
        len(top) == 2 and token in top
        for token, top in zip(tokens, logprobs.top_logprobs, strict=True)
    )


async def test_embeddings_base64_default_equals_floats(
    client: openai.AsyncOpenAI, state: DemoState
) -> None:
    default = await client.embeddings.create(model="demo-embedding", input=["a", "b"])
    floats = await client.embeddings.create(
        model="demo-embedding", input=["a", "b"], encoding_format="float", dimensions=16
    )
    small = await client.embeddings.create(model="demo-embedding", input="a", dimensions=8)

    vectors = [d.embedding for d in default.data]
    assert state.requests[0].body["encoding_format"] == "base64"
    assert vectors == [d.embedding for d in floats.data]
    assert vectors[0] != vectors[1]
    assert len(small.data[0].embedding) == 8


async def test_models(client: openai.AsyncOpenAI) -> None:
    listed = [model.id async for model in client.models.list()]
    model = await client.models.retrieve("demo-chat")

    assert "demo-chat" in listed
    assert model.id == "demo-chat"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("gpt-nonexistent")


@pytest.mark.parametrize(
    ("method", "path", "data", "status"),
    [
        ("POST", "/v1/nowhere", b"{}", 404),
        ("PUT", "/v1/chat/completions", b"", 405),
        ("POST", "/v1/chat/completions", b'{"model": "demo-chat", "messages": [', 400),
        ("POST", "/v1/chat/completions", b'{"messages": [], "n": "two"}', 400),
    ],
)
async def test_errors_use_the_openai_format(
    server: TestServer, method: str, path: str, data: bytes, status: int
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, server.make_url(path), data=data) as response,
    ):
        body = await response.json()

    assert response.status == status
    assert set(body["error"]) == {"message", "type", "param", "code"}


async def test_upstream_headers_are_echoed(server: TestServer, state: DemoState) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            server.make_url("/v1/chat/completions"),
            json={"model": "demo-chat", "messages": USER, "stream": True},
            headers={"X-Custom": "kept"},
        ) as response,
    ):
        await response.read()

    assert response.headers["x-request-id"].startswith("req_")
    assert int(response.headers["openai-processing-ms"]) >= 0
    assert int(response.headers["x-ratelimit-remaining-requests"]) > 0
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "content-length" not in response.headers
    recorded = state.requests[-1]
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    assert recorded.headers["x-custom"] == "kept"
    assert recorded.body["messages"] == USER


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Demo-Chunking", "sentences"),
        ("X-Demo-Chunking", "random"),
        ("X-Demo-Chunking", "word:3"),
        ("X-Demo-Wire", "bytes"),
        ("X-Demo-Wire", "crlf,pigeon"),
        ("X-Demo-Comments", "yes"),
        ("X-Demo-Pace-Ms", "-1"),
        ("X-Demo-Fault", "meteor"),
        ("X-Demo-Reply", "{not json"),
        ("X-Demo-Reply", '{"content": "x", "colour": "red"}'),
        ("X-Demo-Reply", '{"tool_calls": [{"arguments": "{}"}]}'),
        ("X-Demo-Repeat", "0"),
        ("X-Demo-Repeat", "10001"),
        ("X-Demo-Repeat", "two"),
    ],
)
async def test_bad_control_header_is_a_400_naming_it(
    client: openai.AsyncOpenAI, header: str, value: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await chat_chunks(client, {header: value})

    assert caught.value.param == header


# --- Wire shapes ----------------------------------------------------------------------------


async def http_chunks(server: TestServer, headers: dict[str, str]) -> list[bytes]:
    """The body as the server wrote it: chunked encoding keeps each write's boundaries."""
    writes: list[bytes] = []
    current = b""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            server.make_url("/v1/chat/completions"),
            json={"model": "demo-chat", "messages": USER, "stream": True},
            headers={**reply(TRICKY), **headers},
        ) as response,
    ):
        async for data, end_of_chunk in response.content.iter_chunks():
            current += data
            if end_of_chunk:
                writes.append(current)
                current = b""
    return writes


@pytest.fixture
async def fixed_clock_servers(aiohttp_server: ServerFactory) -> Callable[[], Awaitable[TestServer]]:
    """Fresh servers with a frozen clock: the same request gets byte-identical payloads."""

    async def make() -> TestServer:
        return await aiohttp_server(create_demo_app(clock=lambda: 1_700_000_000.0))

    return make


@pytest.mark.parametrize("crlf", ["", "crlf,"])
async def test_bytes_wire_mode_cuts_anywhere_but_keeps_the_payload(
    fixed_clock_servers: Callable[[], Awaitable[TestServer]], crlf: str
) -> None:
    by_event = await http_chunks(await fixed_clock_servers(), {"X-Demo-Wire": f"{crlf}event"})
    by_bytes = await http_chunks(await fixed_clock_servers(), {"X-Demo-Wire": f"{crlf}bytes:3"})

    assert b"".join(by_bytes) == b"".join(by_event)
    assert len(by_bytes) > len(by_event)
    boundaries = list(itertools.pairwise(by_bytes))
    assert any(nxt[0] & 0xC0 == 0x80 for _, nxt in boundaries)  # inside a UTF-8 character
    assert (b"\r\n\r\n" in b"".join(by_event)) == bool(crlf)
    if crlf:
        assert any(prev.endswith(b"\r") and nxt.startswith(b"\n") for prev, nxt in boundaries)


async def test_event_and_coalesce_wire_modes(server: TestServer) -> None:
    by_event = await http_chunks(server, {})
    coalesced = await http_chunks(server, {"X-Demo-Wire": "coalesce"})

    assert all(write.startswith(b"data: ") and write.endswith(b"\n\n") for write in by_event)
    assert by_event[-1] == b"data: [DONE]\n\n"
    assert len(coalesced) == 1
    assert coalesced[0].count(b"\n\n") == len(by_event)


async def test_comments_and_crlf_still_parse_in_the_sdk(client: openai.AsyncOpenAI) -> None:
    headers = {**reply(TRICKY), "X-Demo-Wire": "crlf,bytes:5", "X-Demo-Comments": "1"}

    chunks = await chat_chunks(client, headers)

    assert "".join(contents(chunks)) == TRICKY


async def test_comments_precede_events(server: TestServer) -> None:
    writes = await http_chunks(server, {"X-Demo-Comments": "1"})

    assert writes[0] == b": ping\n\n"
    assert writes.count(b": ping\n\n") == len(writes) // 2


# --- Faults and disconnects -----------------------------------------------------------------


async def test_reset_breaks_the_connection(client: openai.AsyncOpenAI, state: DemoState) -> None:
    with pytest.raises(openai.APIConnectionError):
        await chat_chunks(client, {"X-Demo-Fault": "reset"})

    record = await state.wait_stream_end()
    assert record.outcome is StreamOutcome.ABORTED
    assert record.events_written > 0


async def test_malformed_event_fails_the_sdk(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(json.JSONDecodeError):
        await chat_chunks(client, {"X-Demo-Fault": "malformed"})


async def test_no_done_ends_quietly(
    client: openai.AsyncOpenAI, server: TestServer, state: DemoState
) -> None:
    chunks = await chat_chunks(client, {"X-Demo-Fault": "no-done"})
    writes = await http_chunks(server, {"X-Demo-Fault": "no-done"})

    assert "".join(contents(chunks)) == TOUR
    assert b"[DONE]" not in b"".join(writes)
    assert (await state.wait_stream_end()).finished


async def test_no_done_on_responses_drops_completed(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(RuntimeError, match=r"response\.completed"):
        async with client.responses.stream(
            model="demo-chat", input="hi", extra_headers={"X-Demo-Fault": "no-done"}
        ) as stream:
            await stream.get_final_response()


async def test_http_faults_map_to_sdk_errors(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError):
        await chat_chunks(client, {"X-Demo-Fault": "http-500"})
    with pytest.raises(openai.RateLimitError) as caught:
        await client.responses.create(
            model="demo-chat", input="hi", extra_headers={"X-Demo-Fault": "http-429"}
        )

    assert caught.value.response.headers["retry-after"] == "0"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("reset", openai.APIConnectionError),
        ("malformed", json.JSONDecodeError),
        ("hang", openai.APITimeoutError),
    ],
)
async def test_faults_apply_to_non_streamed_answers(
    client: openai.AsyncOpenAI, fault: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await client.chat.completions.create(
            model="demo-chat", messages=USER, extra_headers={"X-Demo-Fault": fault}, timeout=0.2
        )


@dataclass(frozen=True)
class Running:
    state: DemoState
    base_url: str
    runner: web.AppRunner

    def client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key="x", max_retries=0)


@pytest.fixture(params=[True, False], ids=["cancelling", "not-cancelling"])
async def running(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    """The demo under both of aiohttp's disconnect behaviours.

    pytest-aiohttp, like the gateway's in-process demo, cancels a handler whose client left;
    aiohttp's default does not, so there only a failing write or the hang's poll notices.
    """
    app = create_demo_app()
    runner = web.AppRunner(app, handler_cancellation=request.param)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield Running(app[DEMO_STATE], f"http://{host}:{port}/v1", runner)
    await runner.cleanup()


async def test_hang_times_out_and_the_client_leaving_is_recorded(running: Running) -> None:
    async with running.client() as client:
        with pytest.raises(openai.APITimeoutError):
            await chat_chunks(client, {"X-Demo-Fault": "hang"}, timeout=0.2)

    record = await running.state.wait_stream_end()
    assert record.outcome is StreamOutcome.CLIENT_GONE
    assert record.events_written > 0


async def test_client_disconnect_mid_stream_is_recorded(running: Running) -> None:
    headers = {"X-Demo-Chunking": "char", "X-Demo-Pace-Ms": "5"}
    async with running.client() as client:
        stream = await client.chat.completions.create(
            model="demo-chat", messages=USER, stream=True, extra_headers=headers
        )
        async for _ in stream:
            break
        await stream.close()

    record = await running.state.wait_stream_end()
    assert record.client_gone
    assert record.events_written < len(TOUR)


async def test_shutdown_releases_a_hanging_stream(running: Running) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{running.base_url}/chat/completions",
            json={"model": "demo-chat", "messages": USER, "stream": True},
            headers={"X-Demo-Fault": "hang"},
        ) as response,
    ):
        assert await response.content.readany()
        await running.runner.cleanup()

    record = await running.state.wait_stream_end()
    assert record.outcome is StreamOutcome.ABORTED


async def test_wait_stream_end_waits_for_a_stream_to_start(state: DemoState) -> None:
    with pytest.raises(TimeoutError):
        await state.wait_stream_end(timeout=0.01)
