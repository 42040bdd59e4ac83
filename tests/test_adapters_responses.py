"""Tests for the Responses adapter: pure, JSON events in, events out.

Streams are built the way OpenAI sends them (created, item added, part added, deltas,
done events, completed) and every output is replayed through the Python SDK's own
``ResponseStreamState``, which asserts the structure its helpers rely on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx2
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai import APIError, OpenAI, omit
from openai._models import construct_type
from openai._streaming import Stream
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

from gateway.adapters import ADAPTERS
from gateway.adapters.base import OutEvent, StreamModerator
from gateway.adapters.responses import moderate_response, request_fields
from gateway.sluice import SluiceConfig, moderate
from gateway.sse import encode_event
from tests.adapter_support import CFG, NOTICE, SECRET, STREAMED_TOOLS, every_string

ADAPTER = ADAPTERS["/v1/responses"]
SAFE = st.text(alphabet="abcdefghijklmopqrtuvwxyz ,.!é😀\n", max_size=40)
PLAIN = st.text(alphabet="abcdefghijklmopqrtuvwxyz ,.", max_size=30)
RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1,
    "status": "in_progress",
    "model": "m",
    "output": [],
    "incomplete_details": None,
    "usage": None,
}


def split(text: str, cuts: Sequence[int]) -> list[str]:
    points = sorted({c for c in cuts if 0 < c < len(text)})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


def token(text: str) -> dict[str, Any]:
    return {"token": text, "logprob": -0.5, "top_logprobs": [{"token": text, "logprob": -0.5}]}


class Script:
    """Builds an upstream stream, numbering events as OpenAI does."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.output: list[dict[str, Any]] = []

    def add(self, type_: str, **fields: Any) -> None:
        self.events.append({"type": type_, "sequence_number": len(self.events), **fields})

    def start(self) -> Script:
        self.add("response.created", response=dict(RESPONSE))
        self.add("response.in_progress", response=dict(RESPONSE))
        return self

    def message(
        self,
        deltas: Sequence[str],
        *,
        logprobs: bool = False,
        refusal: bool = False,
        annotations: Sequence[dict[str, Any]] = (),
    ) -> Script:
        o = len(self.output)
        item_id = f"msg_{o}"
        self.add(
            "response.output_item.added",
            output_index=o,
            item={
                "id": item_id,
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            },
        )
        kind, field = ("refusal", "refusal") if refusal else ("output_text", "text")
        empty: dict[str, Any] = {"type": kind, field: ""}
        if not refusal:
            empty |= {"annotations": [], "logprobs": []}
        self.add(
            "response.content_part.added",
            item_id=item_id,
            output_index=o,
            content_index=0,
            part=empty,
        )
        for d in deltas:
            extra = {"logprobs": [token(d)] if logprobs else []} if not refusal else {}
            self.add(
                f"response.{kind if refusal else 'output_text'}.delta",
                item_id=item_id,
                output_index=o,
                content_index=0,
                delta=d,
                **extra,
            )
        text = "".join(deltas)
        for a in annotations:
            self.add(
                "response.output_text.annotation.added",
                item_id=item_id,
                output_index=o,
                content_index=0,
                annotation_index=0,
                annotation=a,
            )
        done: dict[str, Any] = {field: text}
        if not refusal:
            done["logprobs"] = [token(d) for d in deltas] if logprobs else []
        self.add(f"response.{kind}.done", item_id=item_id, output_index=o, content_index=0, **done)
        part = {"type": kind, field: text}
        if not refusal:
            part |= {"annotations": list(annotations), "logprobs": done["logprobs"]}
        self.add(
            "response.content_part.done",
            item_id=item_id,
            output_index=o,
            content_index=0,
            part=part,
        )
        item = {
            "id": item_id,
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [part],
        }
        self.add("response.output_item.done", output_index=o, item=item)
        self.output.append(item)
        return self

    def function(self, deltas: Sequence[str]) -> Script:
        o = len(self.output)
        item = {
            "id": f"fc_{o}",
            "type": "function_call",
            "status": "in_progress",
            "arguments": "",
            "call_id": f"call_{o}",
            "name": "f",
        }
        self.add("response.output_item.added", output_index=o, item=dict(item))
        for d in deltas:
            self.add(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=o,
                delta=d,
            )
        text = "".join(deltas)
        self.add(
            "response.function_call_arguments.done",
            item_id=item["id"],
            output_index=o,
            arguments=text,
        )
        done = dict(item, status="completed", arguments=text)
        self.add("response.output_item.done", output_index=o, item=done)
        self.output.append(done)
        return self

    def reasoning(self, deltas: Sequence[str]) -> Script:
        o = len(self.output)
        item_id = f"rs_{o}"
        self.add(
            "response.output_item.added",
            output_index=o,
            item={"id": item_id, "type": "reasoning", "summary": []},
        )
        self.add(
            "response.reasoning_summary_part.added",
            item_id=item_id,
            output_index=o,
            summary_index=0,
            part={"type": "summary_text", "text": ""},
        )
        for d in deltas:
            self.add(
                "response.reasoning_summary_text.delta",
                item_id=item_id,
                output_index=o,
                summary_index=0,
                delta=d,
            )
        text = "".join(deltas)
        self.add(
            "response.reasoning_summary_text.done",
            item_id=item_id,
            output_index=o,
            summary_index=0,
            text=text,
        )
        part = {"type": "summary_text", "text": text}
        self.add(
            "response.reasoning_summary_part.done",
            item_id=item_id,
            output_index=o,
            summary_index=0,
            part=part,
        )
        item = {"id": item_id, "type": "reasoning", "summary": [part]}
        self.add("response.output_item.done", output_index=o, item=item)
        self.output.append(item)
        return self

    def complete(self) -> list[str]:
        self.add(
            "response.completed", response=dict(RESPONSE, status="completed", output=self.output)
        )
        return [orjson.dumps(e).decode() for e in self.events]

    def body(self) -> dict[str, Any]:
        """The same response, non-streamed."""
        return orjson.loads(orjson.dumps(dict(RESPONSE, status="completed", output=self.output)))


def run(
    events: Sequence[str], config: SluiceConfig = CFG
) -> tuple[list[OutEvent], StreamModerator]:
    moderator = ADAPTER.stream({}, config)
    out = []
    for data in events:
        name = orjson.loads(data)["type"]
        out.extend(moderator.on_event(data, name).events)
    return out, moderator


def parsed(out: Sequence[OutEvent]) -> list[dict[str, Any]]:
    return [orjson.loads(o.data) for o in out if o.data != "[DONE]"]


def sdk_state(out: Sequence[OutEvent]) -> ResponseStreamState[Any]:
    """Replay through the SDK's helper state; it raises on any structure it rejects."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in parsed(out):
        state.handle_event(construct_type(type_=ResponseStreamEvent, value=event))  # type: ignore[arg-type]
    return state


def of_type(out: Sequence[OutEvent], type_: str) -> list[dict[str, Any]]:
    return [e for e in parsed(out) if e["type"] == type_]


def deltas(out: Sequence[OutEvent], type_: str = "response.output_text.delta") -> str:
    return "".join(e["delta"] for e in of_type(out, type_))


def visible(out: Sequence[OutEvent]) -> str:
    return "\x00".join(s for e in parsed(out) for s in every_string(e))


def assert_hidden(out: Sequence[OutEvent], secret: str = SECRET) -> None:
    seen, tail = visible(out), secret[3:]
    for i in range(len(tail) - 3):
        assert tail[i : i + 4] not in seen, tail[i : i + 4]


def assert_numbered(out: Sequence[OutEvent]) -> None:
    numbers = [e["sequence_number"] for e in parsed(out)]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert all(o.event == orjson.loads(o.data)["type"] for o in out if o.data != "[DONE]")


def round_trip(data: str) -> str:
    return orjson.dumps(orjson.loads(data)).decode()


# -- transparency ----------------------------------------------------------------------


@given(
    text=SAFE,
    args=st.text(alphabet="abcdefghijklmopqrtuvwxyz ,.é😀", max_size=30),
    cuts=st.lists(st.integers(1, 40)),
)
def test_transparency_for_any_chunking(text: str, args: str, cuts: list[int]) -> None:
    raw_args = json.dumps({"q": args, "m": 3}, ensure_ascii=False)
    events = (
        Script()
        .start()
        .reasoning(split(text, cuts))
        .message(split(text, cuts), logprobs=True)
        .function(split(raw_args, cuts))
        .complete()
    )
    out, moderator = run(events, STREAMED_TOOLS)
    assert [o.data for o in out] == [round_trip(e) for e in events]
    assert not moderator.finished
    assert moderator.on_eof().events == [] and moderator.finished
    whole, _ = run(events)
    sdk_state(whole)
    final = [e["response"] for e in of_type(whole, "response.completed")]
    assert final == [e["response"] for e in of_type(out, "response.completed")]
    args = of_type(whole, "response.function_call_arguments.delta")
    assert [a["delta"] for a in args] == [raw_args]  # one delta, the whole arguments


def test_done_after_completed_passes_and_ends() -> None:
    events = Script().start().message(["Hello"]).complete()
    _out, moderator = run(events)
    assert moderator.on_event("[DONE]", None).events == [OutEvent("[DONE]")]
    assert moderator.finished


# -- redaction -------------------------------------------------------------------------


@given(pre=PLAIN, post=PLAIN, cuts=st.lists(st.integers(1, 80)))
def test_redaction_reaches_every_echo(pre: str, post: str, cuts: list[int]) -> None:
    text = f"{pre}{SECRET}{post}"
    expected = moderate(CFG, text).text
    raw_args = json.dumps({"k": text})
    script = (
        Script()
        .start()
        .reasoning(split(text, cuts))
        .message(split(text, cuts), logprobs=True)
        .function(split(raw_args, cuts))
    )
    out, _ = run(script.complete())
    assert_hidden(out)
    assert_numbered(out)
    assert deltas(out) == expected
    assert deltas(out, "response.reasoning_summary_text.delta") == expected
    assert of_type(out, "response.output_text.done")[0]["text"] == expected
    assert (
        "".join(t["token"] for t in of_type(out, "response.output_text.done")[0]["logprobs"])
        == expected
    )
    assert of_type(out, "response.content_part.done")[0]["part"]["text"] == expected
    assert of_type(out, "response.reasoning_summary_part.done")[0]["part"]["text"] == expected
    args = of_type(out, "response.function_call_arguments.done")[0]["arguments"]
    assert json.loads(args) == {"k": expected}
    assert json.loads(deltas(out, "response.function_call_arguments.delta")) == {"k": expected}
    final = of_type(out, "response.completed")[0]["response"]
    assert final["output"][1]["content"][0]["text"] == expected
    assert json.loads(final["output"][2]["arguments"]) == {"k": expected}
    state = sdk_state(out)
    assert state._completed_response is not None
    assert state._completed_response.output_text == expected


def test_held_text_is_flushed_before_its_done_event() -> None:
    out, _ = run(Script().start().message(["Ask about", " sk"]).complete())
    types = [e["type"] for e in parsed(out)]
    last_delta = max(i for i, t in enumerate(types) if t == "response.output_text.delta")
    assert types[last_delta + 1] == "response.output_text.done"
    assert of_type(out, "response.output_text.delta")[-1]["delta"] == "sk"
    assert_numbered(out)


def test_held_deltas_are_dropped_and_numbers_stay_gapless() -> None:
    events = Script().start().message(["Hi s", "k", "-AB12", "CD34EF there"]).complete()
    out, _ = run(events)
    assert [e["delta"] for e in of_type(out, "response.output_text.delta")] == [
        "Hi ",
        "[REDACTED] there",
    ]
    assert_numbered(out)
    assert len(out) == len(events) - 2


def test_annotations_follow_the_text() -> None:
    text = f"See {SECRET} at docs."
    notes = [
        {
            "type": "url_citation",
            "start_index": 21,
            "end_index": 25,
            "title": "Docs",
            "url": "https://d",
        },
        {
            "type": "url_citation",
            "start_index": 4,
            "end_index": 10,
            "title": "Key",
            "url": "https://k",
        },
        {"type": "file_citation", "index": 26, "file_id": "f", "filename": "a.txt"},
    ]
    script = Script().start().message([text[:8], text[8:]], annotations=notes)
    out, _ = run(script.complete())
    released = "See [REDACTED] at docs."
    added = [e["annotation"] for e in of_type(out, "response.output_text.annotation.added")]
    assert [(a.get("start_index"), a.get("end_index"), a.get("index")) for a in added] == [
        (18, 22, None),
        (None, None, 23),
    ]
    assert released[18:22] == "docs"
    assert [
        e["annotation_index"] for e in of_type(out, "response.output_text.annotation.added")
    ] == [0, 1]
    part = of_type(out, "response.content_part.done")[0]["part"]
    assert part["annotations"] == added
    body = moderate_response(script.body(), CFG).body
    assert body["output"][0]["content"][0]["annotations"] == added


def test_refusal_is_a_channel() -> None:
    out, _ = run(Script().start().message(["no: sk-AB1", "2CD34EF"], refusal=True).complete())
    assert deltas(out, "response.refusal.delta") == "no: [REDACTED]"
    assert of_type(out, "response.refusal.done")[0]["refusal"] == "no: [REDACTED]"
    assert (
        of_type(out, "response.completed")[0]["response"]["output"][0]["content"][0]["refusal"]
        == "no: [REDACTED]"
    )
    assert_hidden(out)


# -- block -----------------------------------------------------------------------------


@given(pre=PLAIN, post=PLAIN, cuts=st.lists(st.integers(1, 80)))
def test_block_ends_with_response_incomplete(pre: str, post: str, cuts: list[int]) -> None:
    text = f"{pre}nightingale{post} zqzq"
    script = (
        Script()
        .start()
        .reasoning(["thinking"])
        .message(split(text, cuts), logprobs=True)
        .message(["later"])
    )
    out, moderator = run(script.complete(), NOTICE)
    assert moderator.finished
    assert_numbered(out)
    released = pre + " [cut off]"
    types = [e["type"] for e in parsed(out)]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    assert deltas(out) == released
    assert of_type(out, "response.output_text.done")[0]["text"] == released
    assert (
        "".join(t["token"] for t in of_type(out, "response.output_text.done")[0]["logprobs"])
        == released
    )
    assert of_type(out, "response.content_part.done")[0]["part"]["text"] == released
    item = of_type(out, "response.output_item.done")[-1]["item"]
    assert item["status"] == "incomplete" and item["content"][0]["text"] == released
    final = of_type(out, "response.incomplete")[0]["response"]
    assert final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "content_filter"}
    assert final["id"] == "resp_1"
    assert [i["type"] for i in final["output"]] == ["reasoning", "message"]
    assert final["output"][1]["content"][0]["text"] == released
    vis = visible(out)
    assert "ingale" not in vis and "zqzq" not in vis and "later" not in vis
    state = sdk_state(out)  # the SDK accepts the sequence; get_final_response() would raise
    assert state._completed_response is None


@pytest.mark.parametrize("whole", [True, False])
def test_block_inside_function_arguments(whole: bool) -> None:
    out, moderator = run(
        Script().start().function(['{"q": "a night', 'ingale", "n": 1}']).complete(),
        CFG if whole else STREAMED_TOOLS,
    )
    assert moderator.finished
    assert [e["type"] for e in parsed(out)][-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    # Whole: nothing of the arguments was sent, so no truncated call can be run.
    expected = "" if whole else '{"q": "a '
    assert of_type(out, "response.function_call_arguments.done")[0]["arguments"] == expected
    assert of_type(out, "response.output_item.done")[0]["item"]["arguments"] == expected
    assert of_type(out, "response.incomplete")[0]["response"]["output"][0]["arguments"] == expected
    assert not of_type(out, "response.function_call_arguments.delta") or not whole
    assert "ingale" not in visible(out)
    sdk_state(out)


def test_block_found_when_a_done_event_finishes_the_channel() -> None:
    out, moderator = run(Script().start().message(["the nighting", "ale"]).complete())
    assert moderator.finished
    assert (
        of_type(out, "response.incomplete")[0]["response"]["output"][0]["content"][0]["text"]
        == "the "
    )
    assert "ingale" not in visible(out)


# -- how a stream ends -----------------------------------------------------------------


def sdk_raw(out: Sequence[OutEvent]) -> list[Any]:
    """Decode our frames with the SDK's raw ``Stream``, as ``create(stream=True)`` does."""
    body = b"".join(encode_event(o.data, o.event) for o in out)
    request = httpx2.Request("POST", "http://gateway/v1/responses")
    response = httpx2.Response(200, content=body, request=request)
    client = OpenAI(api_key="k", base_url="http://gateway/v1")
    return list(Stream(cast_to=ResponseStreamEvent, response=response, client=client))  # type: ignore[arg-type]


@pytest.mark.parametrize("end", ["eof", "error", "malformed", "done"])
def test_broken_streams_end_with_an_error_the_sdk_raises(end: str) -> None:
    events = Script().start().message(["Hello", " sk-AB12"]).complete()[:-6]
    out, moderator = run(events)
    if end == "eof":
        out += moderator.on_eof().events
    elif end == "error":
        out += moderator.on_upstream_error("reset").events
    elif end == "malformed":
        out += moderator.on_event("{oops", None).events
    else:
        out += moderator.on_event("[DONE]", None).events
    assert moderator.finished
    error = orjson.loads(out[-1].data)
    assert out[-1].event == "error" and error["type"] == "error"
    assert error["error"]["code"] == error["code"]
    assert "sk-AB12" not in visible(out)
    assert_numbered(out)
    with pytest.raises(APIError):
        sdk_raw(out)


def test_upstream_error_event_passes_through() -> None:
    events = Script().start().message(["Hello sk-AB"]).complete()[:-6]
    _out, moderator = run(events)
    error = {
        "type": "error",
        "code": "server_error",
        "message": "boom",
        "param": None,
        "sequence_number": 99,
    }
    end = moderator.on_event(orjson.dumps(error).decode(), "error").events
    assert moderator.finished
    assert orjson.loads(end[0].data)["message"] == "boom"


def test_unknown_events_pass_in_order() -> None:
    events = Script().start().message(["Hi"]).complete()
    odd = orjson.dumps(
        {"type": "response.web_search_call.searching", "sequence_number": 3, "item_id": "ws"}
    ).decode()
    out, _ = run([*events[:3], odd, *events[3:]])
    assert [e["type"] for e in parsed(out)][3] == "response.web_search_call.searching"
    assert_numbered(out)


# -- non-streaming ---------------------------------------------------------------------


@given(pre=PLAIN, post=PLAIN, cuts=st.lists(st.integers(1, 80)), banned=st.booleans())
def test_non_streaming_equals_streaming(pre: str, post: str, cuts: list[int], banned: bool) -> None:
    text = f"{pre}{'nightingale' if banned else SECRET}{post}"
    raw_args = json.dumps({"k": text})
    script = (
        Script()
        .start()
        .reasoning(["why"])
        .message(split(text, cuts), logprobs=True)
        .function(split(raw_args, cuts))
    )
    out, _ = run(script.complete(), NOTICE)
    streamed = parsed(out)[-1]["response"]
    body = moderate_response(script.body(), NOTICE).body
    assert body["status"] == streamed["status"]
    assert body.get("incomplete_details") == streamed.get("incomplete_details")
    assert [i["type"] for i in body["output"]] == [i["type"] for i in streamed["output"]]
    for mine, theirs in zip(body["output"], streamed["output"], strict=True):
        assert mine.get("content") == theirs.get("content")
        assert mine.get("summary") == theirs.get("summary")
        assert mine.get("arguments") == theirs.get("arguments")


def test_non_streaming_block_truncates() -> None:
    body = moderate_response(
        Script()
        .start()
        .message(["fine"])
        .message(["a nightingale sings"])
        .message(["after"])
        .body(),
        CFG,
    ).body
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "content_filter"}
    assert [i["content"][0]["text"] for i in body["output"]] == ["fine", "a "]
    assert body["output"][1]["status"] == "incomplete"


# -- request ---------------------------------------------------------------------------


def test_request_fields_list_every_text() -> None:
    body = {
        "instructions": "be nice",
        "input": [
            {"role": "user", "content": "hello"},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "hi"},
                    {"type": "input_image", "image_url": "https://example.com/cat.png"},
                ],
            },
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "prev"}],
            },
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": '{"a": 1}'},
            {"type": "function_call_output", "call_id": "c", "output": "result"},
        ],
    }
    assert {f.param: f.text for f in request_fields(body)} == {
        "instructions": "be nice",
        "input[0].content": "hello",
        "input[1].content[0].text": "hi",
        "input[1].content[1].image_url": "https://example.com/cat.png",
        "input[2].content[0].text": "prev",
        "input[3].call_id": "c",
        "input[3].name": "f",
        "input[3].arguments": '{"a": 1}',
        "input[4].call_id": "c",
        "input[4].output": "result",
    }
    assert [f.param for f in request_fields({"input": "just text"})] == ["input"]


def test_annotation_into_held_text_waits_for_its_release() -> None:
    note = {
        "type": "url_citation",
        "start_index": 6,
        "end_index": 8,
        "title": "S",
        "url": "https://s",
    }
    out, _ = run(Script().start().message(["Ask a sk"], annotations=[note]).complete())
    types = [e["type"] for e in parsed(out)]
    flush = types.index("response.output_text.delta", types.index("response.output_text.delta") + 1)
    assert types[flush + 1] == "response.output_text.annotation.added"
    assert (
        of_type(out, "response.output_text.annotation.added")[0]["annotation"]["start_index"] == 6
    )
    assert_numbered(out)


def test_block_in_a_reasoning_summary_closes_every_open_part() -> None:
    out, moderator = run(Script().start().reasoning(["I recall a nighting", "ale here"]).complete())
    assert moderator.finished
    assert [e["type"] for e in parsed(out)][-5:] == [
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    final = of_type(out, "response.incomplete")[0]["response"]
    assert final["output"][0]["summary"] == [{"type": "summary_text", "text": "I recall a "}]
    assert "ingale" not in visible(out)
    sdk_state(out)
