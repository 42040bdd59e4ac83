"""``POST /v1/chat/completions``: chunks and completions shaped as the SDKs require
(docs/wire.md, "Chat chunk requirements").

The shapes follow what the Python SDK's stream helper needs to rebuild a completion: the
role only in a choice's first delta, a tool call's id, type and name only in its first
delta, a ``function`` object in every tool-call delta, choice indexes first seen in order,
and a ``finish_reason`` in each choice's last chunk.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.demo.app_keys import CLOCK, CONTROLS, SEQUENCE
from gateway.demo.body import (
    first_function_name,
    get_bool,
    get_dict,
    get_int,
    get_list,
    get_str,
    json_body,
    text_of,
)
from gateway.demo.chunking import interleave
from gateway.demo.classifiers import ClientGone, classifier_reply
from gateway.demo.reply import Answer, Reply
from gateway.demo.scripts import default_reply
from gateway.demo.sending import send_events, send_json
from gateway.demo.tokens import MAX_TOP_LOGPROBS, chat_logprob, chat_usage, count_tokens
from gateway.demo.wire import DONE, Event

MAX_CHOICES = 8
SYSTEM_FINGERPRINT = "fp_sluicegate_demo"


async def handle(request: web.Request) -> web.StreamResponse:
    body = json_body(request)
    try:
        # The demo's guard and judge models (``gateway.demo.classifiers``) say a verdict.
        verdict = await classifier_reply(request, body)
    except ClientGone:
        return web.Response(status=499)
    answer = _answer(request, body, verdict)
    if get_bool(body, "stream"):
        return await send_events(request, stream_events(answer))
    return await send_json(request, completion(answer))


async def retrieve(request: web.Request) -> web.StreamResponse:
    """``GET /v1/chat/completions/{id}``: a stored completion, as if created just now."""
    return await send_json(request, completion(_answer(request, {})))


async def stored_messages(request: web.Request) -> web.StreamResponse:
    """``GET /v1/chat/completions/{id}/messages``: the stored messages (one, scripted).

    The scripted text is both the message's ``content`` and its one ``content_parts`` text
    part, as OpenAI stores a message sent with a content list.
    """
    reply = _answer(request, {}).replies[0]
    text = reply.content or ""
    message = {
        "id": f"{request.match_info['id']}-0",
        "role": "user",
        "content": text,
        "name": None,
        "content_parts": [{"type": "text", "text": text}],
    }
    return await send_json(
        request,
        {
            "object": "list",
            "data": [message],
            "first_id": message["id"],
            "last_id": message["id"],
            "has_more": False,
        },
    )


async def list_stored(request: web.Request) -> web.StreamResponse:
    """``GET /v1/chat/completions``: the stored completions (one, scripted)."""
    stored = completion(_answer(request, {}))
    return await send_json(request, {"object": "list", "data": [stored], "has_more": False})


def _answer(request: web.Request, body: dict[str, Any], reply: Reply | None = None) -> Answer:
    messages = [m for m in get_list(body, "messages") if isinstance(m, dict)]
    user_texts = [text_of(m.get("content")) for m in messages if m.get("role") == "user"]
    default = reply or default_reply(
        user_texts[-1] if user_texts else "", first_function_name(get_list(body, "tools"))
    )
    top = get_int(body, "top_logprobs", 0, 0, MAX_TOP_LOGPROBS)
    return Answer(
        sequence=request[SEQUENCE],
        created=int(request.app[CLOCK]()),
        model=get_str(body, "model", "demo-chat"),
        replies=request[CONTROLS].replies(get_int(body, "n", 1, 1, MAX_CHOICES), default),
        chunking=request[CONTROLS].chunking,
        top_logprobs=top if get_bool(body, "logprobs") else None,
        include_usage=get_bool(get_dict(body, "stream_options"), "include_usage"),
        prompt_tokens=sum(count_tokens(text_of(m.get("content"))) for m in messages),
    )


def stream_events(answer: Answer) -> list[Event]:
    """Every event of the stream, ``[DONE]`` last."""
    choices = interleave([_choice_chunks(answer, i, r) for i, r in enumerate(answer.replies)])
    chunks = [_chunk(answer, [choice]) for choice in choices]
    if answer.include_usage:
        chunks.append(_chunk(answer, [], usage=_usage(answer)))
    return [*(Event(orjson.dumps(chunk).decode()) for chunk in chunks), DONE]


def completion(answer: Answer) -> dict[str, Any]:
    """The non-streamed ``chat.completion`` with the same text, ids and logprobs."""
    return {
        **_envelope(answer, "chat.completion"),
        "choices": [
            {
                "index": index,
                "message": _message(answer, index, reply),
                "logprobs": _logprobs(
                    answer, _pieces(answer, reply.content), _pieces(answer, reply.refusal)
                ),
                "finish_reason": reply.finish_reason,
            }
            for index, reply in enumerate(answer.replies)
        ],
        "usage": _usage(answer),
    }


def _choice_chunks(answer: Answer, index: int, reply: Reply) -> list[dict[str, Any]]:
    """One choice's entries in stream order: role, content, refusal, tool calls, finish."""
    split = answer.chunking.split
    role = {"role": "assistant", "content": "" if reply.content is not None else None}
    entries = [_entry(index, role)]
    entries += [
        _entry(index, {"content": piece}, _logprobs(answer, [piece], None))
        for piece in split(reply.content or "")
    ]
    entries += [
        _entry(index, {"refusal": piece}, _logprobs(answer, None, [piece]))
        for piece in split(reply.refusal or "")
    ]
    for position, call in enumerate(reply.tool_calls):
        head = {
            "index": position,
            "id": _call_id(answer, index, position),
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        entries.append(_entry(index, {"tool_calls": [head]}))
        entries += [
            _entry(index, {"tool_calls": [{"index": position, "function": {"arguments": piece}}]})
            for piece in split(call.arguments)
        ]
    entries.append({**_entry(index, {}), "finish_reason": reply.finish_reason})
    return entries


def _entry(
    index: int, delta: dict[str, Any], logprobs: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": None}


def _chunk(
    answer: Answer, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    chunk = {**_envelope(answer, "chat.completion.chunk"), "choices": choices}
    if answer.include_usage:
        # Like OpenAI: with include_usage every chunk has the key, null until the last.
        chunk["usage"] = usage
    return chunk


def _envelope(answer: Answer, kind: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-demo{answer.sequence:08d}",
        "object": kind,
        "created": answer.created,
        "model": answer.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "service_tier": "default",
    }


def _message(answer: Answer, index: int, reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.content,
        "refusal": reply.refusal,
        "annotations": [],
    }
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": _call_id(answer, index, position),
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for position, call in enumerate(reply.tool_calls)
        ]
    return message


def _logprobs(
    answer: Answer, content: list[str] | None, refusal: list[str] | None
) -> dict[str, Any] | None:
    """One logprob per token; tokens are chunking pieces, so they concatenate to the text."""
    top = answer.top_logprobs
    if top is None:
        return None

    def entries(tokens: list[str] | None) -> list[dict[str, Any]] | None:
        return None if tokens is None else [chat_logprob(token, top) for token in tokens]

    return {"content": entries(content), "refusal": entries(refusal)}


def _pieces(answer: Answer, text: str | None) -> list[str] | None:
    return None if text is None else answer.chunking.split(text)


def _usage(answer: Answer) -> dict[str, Any]:
    return chat_usage(answer.prompt_tokens, answer.completion_tokens)


def _call_id(answer: Answer, choice: int, position: int) -> str:
    return f"call_demo{answer.sequence:08d}_{choice}_{position}"
