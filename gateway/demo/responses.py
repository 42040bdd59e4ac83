"""``POST /v1/responses``: the Responses API's full event sequence and response object.

The Python helper ``responses.stream()`` rebuilds its snapshot from these events and takes
``response.completed``'s ``response`` verbatim as the final answer (docs/wire.md, "How a stream
ends"), so the stream must carry everything: created and in-progress first, every item and part
announced before its deltas, the text repeated in the done events, and ``output`` in full at the
end. ``output_text`` is left out on purpose: the SDKs compute it, the API does not send it. The
non-streamed object is the final response of the very same render, so both agree.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.demo.app_keys import CLOCK, CONTROLS, SEQUENCE
from gateway.demo.body import (
    first_function_name,
    get_bool,
    get_int,
    get_list,
    get_str,
    json_body,
    text_of,
)
from gateway.demo.reply import Answer, Reply, ToolCallSpec
from gateway.demo.scripts import default_reply
from gateway.demo.sending import send_events, send_json
from gateway.demo.tokens import (
    MAX_TOP_LOGPROBS,
    chat_logprob,
    count_tokens,
    delta_logprob,
    responses_usage,
)
from gateway.demo.wire import Event

LOGPROBS_INCLUDE = "message.output_text.logprobs"


async def handle(request: web.Request) -> web.StreamResponse:
    body = json_body(request)
    events, final = render(_answer(request, body), body)
    if get_bool(body, "stream"):
        return await send_events(request, events)
    return await send_json(request, final)


async def retrieve(request: web.Request) -> web.StreamResponse:
    """``GET /v1/responses/{id}[?stream=true]``: a stored response, replayed."""
    events, final = render(_answer(request, {}), {})
    if request.query.get("stream") == "true":
        return await send_events(request, events)
    return await send_json(request, final)


async def cancel(request: web.Request) -> web.StreamResponse:
    """``POST /v1/responses/{id}/cancel``: the stored response, as it stands when cancelled."""
    _, final = render(_answer(request, {}), {})
    return await send_json(request, {**final, "id": request.match_info["id"]})


async def input_items(request: web.Request) -> web.StreamResponse:
    """``GET /v1/responses/{id}/input_items``: the items of a stored response (scripted)."""
    return await send_json(request, item_list(stored_items(request)))


async def compact(request: web.Request) -> web.StreamResponse:
    """``POST /v1/responses/compact``: the input's items, then a compaction item."""
    body = json_body(request)
    answer = _answer(request, body)
    _, final = render(answer, body)
    compaction = {
        "id": f"cmp_demo{answer.sequence:08d}",
        "type": "compaction",
        "encrypted_content": "ZGVtbw==",
    }
    return await send_json(
        request,
        {
            "id": f"resp_demo{answer.sequence:08d}",
            "object": "response.compaction",
            "created_at": answer.created,
            "output": [*final["output"], compaction],
            "usage": final["usage"],
        },
    )


def stored_items(request: web.Request) -> list[dict[str, Any]]:
    """What a stored response or conversation holds: the scripted reply's output items."""
    _, final = render(_answer(request, {}), {})
    items: list[dict[str, Any]] = final["output"]
    return items


def item_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": False,
    }


def _answer(request: web.Request, body: dict[str, Any]) -> Answer:
    tools = get_list(body, "tools")
    user_texts, all_texts = _input_texts(body)
    top = get_int(body, "top_logprobs", 0, 0, MAX_TOP_LOGPROBS)
    return Answer(
        sequence=request[SEQUENCE],
        created=int(request.app[CLOCK]()),
        model=get_str(body, "model", "demo-chat"),
        replies=request[CONTROLS].replies(
            1, default_reply(user_texts[-1] if user_texts else "", first_function_name(tools))
        ),
        chunking=request[CONTROLS].chunking,
        top_logprobs=top if LOGPROBS_INCLUDE in get_list(body, "include") else None,
        include_usage=False,
        prompt_tokens=sum(map(count_tokens, all_texts)),
    )


def render(answer: Answer, body: dict[str, Any]) -> tuple[list[Event], dict[str, Any]]:
    """The stream's events, ``response.completed`` last, and the final response object."""
    renderer = _Renderer(answer, body)
    final = renderer.render()
    return renderer.events, final


def _input_texts(body: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The user messages' texts, and every text the usage counts (instructions included)."""
    given = body.get("input")
    items = [{"role": "user", "content": given}] if isinstance(given, str) else given
    messages = [item for item in items or [] if isinstance(item, dict)]
    user = [text_of(m.get("content")) for m in messages if m.get("role") == "user"]
    everything = [text_of(body.get("instructions")), *(text_of(m.get("content")) for m in messages)]
    return user, everything


class _Renderer:
    """Collects events with increasing ``sequence_number`` while building the response."""

    def __init__(self, answer: Answer, body: dict[str, Any]) -> None:
        self.answer = answer
        self.body = body
        self.events: list[Event] = []

    def render(self) -> dict[str, Any]:
        answer = self.answer
        reply = answer.replies[0]
        self._emit("response.created", response=self._response("in_progress", [], None))
        self._emit("response.in_progress", response=self._response("in_progress", [], None))
        output: list[dict[str, Any]] = []
        if reply.content is not None or reply.refusal is not None:
            output.append(self._message(len(output), reply))
        for position, call in enumerate(reply.tool_calls):
            output.append(self._function_call(len(output), position, call))
        usage = responses_usage(answer.prompt_tokens, reply.tokens)
        final = self._response("completed", output, usage)
        self._emit("response.completed", response=final)
        return final

    def _emit(self, kind: str, **fields: Any) -> None:
        payload = {"type": kind, "sequence_number": len(self.events), **fields}
        self.events.append(Event(orjson.dumps(payload).decode(), event=kind))

    def _message(self, output_index: int, reply: Reply) -> dict[str, Any]:
        item_id = f"msg_demo{self.answer.sequence:08d}"
        where = {"item_id": item_id, "output_index": output_index}
        self._emit(
            "response.output_item.added",
            output_index=output_index,
            item=_message_item(item_id, [], "in_progress"),
        )
        parts: list[dict[str, Any]] = []
        if reply.content is not None:
            parts.append(self._text_part(where, len(parts), reply.content))
        if reply.refusal is not None:
            parts.append(self._refusal_part(where, len(parts), reply.refusal))
        item = _message_item(item_id, parts, "completed")
        self._emit("response.output_item.done", output_index=output_index, item=item)
        return item

    def _text_part(self, where: dict[str, Any], index: int, text: str) -> dict[str, Any]:
        top = self.answer.top_logprobs
        pieces = self.answer.chunking.split(text)
        at = {**where, "content_index": index}
        self._emit("response.content_part.added", **at, part=_text(""))
        for piece in pieces:
            logprobs = [] if top is None else [delta_logprob(piece, top)]
            self._emit("response.output_text.delta", **at, delta=piece, logprobs=logprobs)
        done_logprobs = [] if top is None else [delta_logprob(piece, top) for piece in pieces]
        self._emit("response.output_text.done", **at, text=text, logprobs=done_logprobs)
        part = _text(text)
        if top is not None:
            part["logprobs"] = [chat_logprob(piece, top) for piece in pieces]
        self._emit("response.content_part.done", **at, part=part)
        return part

    def _refusal_part(self, where: dict[str, Any], index: int, refusal: str) -> dict[str, Any]:
        at = {**where, "content_index": index}
        self._emit("response.content_part.added", **at, part=_refusal(""))
        for piece in self.answer.chunking.split(refusal):
            self._emit("response.refusal.delta", **at, delta=piece)
        self._emit("response.refusal.done", **at, refusal=refusal)
        self._emit("response.content_part.done", **at, part=_refusal(refusal))
        return _refusal(refusal)

    def _function_call(
        self, output_index: int, position: int, call: ToolCallSpec
    ) -> dict[str, Any]:
        suffix = f"{self.answer.sequence:08d}_{position}"
        item_id = f"fc_demo{suffix}"
        where = {"item_id": item_id, "output_index": output_index}

        def item(arguments: str, status: str) -> dict[str, Any]:
            return {
                "id": item_id,
                "type": "function_call",
                "call_id": f"call_demo{suffix}",
                "name": call.name,
                "arguments": arguments,
                "status": status,
            }

        self._emit(
            "response.output_item.added", output_index=output_index, item=item("", "in_progress")
        )
        for piece in self.answer.chunking.split(call.arguments):
            self._emit("response.function_call_arguments.delta", **where, delta=piece)
        self._emit("response.function_call_arguments.done", **where, arguments=call.arguments)
        done = item(call.arguments, "completed")
        self._emit("response.output_item.done", output_index=output_index, item=done)
        return done

    def _response(
        self, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None
    ) -> dict[str, Any]:
        answer, body = self.answer, self.body
        return {
            "id": f"resp_demo{answer.sequence:08d}",
            "object": "response",
            "created_at": answer.created,
            "status": status,
            "background": False,
            # The demo generates instantly: it completes when it was created.
            "completed_at": answer.created if status == "completed" else None,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "metadata": body.get("metadata") or {},
            "model": answer.model,
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": get_list(body, "tools"),
            "top_logprobs": answer.top_logprobs,
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": usage,
            "user": None,
        }


def _message_item(item_id: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": parts,
    }


def _text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _refusal(refusal: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": refusal}
