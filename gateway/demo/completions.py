"""``POST /v1/completions``: the legacy ``text_completion`` shape (docs/wire.md, "Legacy
Completions").

Legacy logprobs are column-wise (``tokens``, ``token_logprobs``, ``top_logprobs`` keyed by
raw token text, ``text_offset``), a different place for the answer's text to reappear than
Chat's, so the demo produces them too. Only a reply's ``content`` applies here.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.demo.app_keys import CLOCK, CONTROLS, SEQUENCE
from gateway.demo.body import get_bool, get_dict, get_int, get_str, json_body, text_of
from gateway.demo.chunking import interleave
from gateway.demo.reply import Answer
from gateway.demo.scripts import default_reply
from gateway.demo.sending import send_events, send_json
from gateway.demo.tokens import chat_usage, count_tokens, legacy_logprobs
from gateway.demo.wire import DONE, Event

MAX_CHOICES = 8
MAX_LOGPROBS = 5


async def handle(request: web.Request) -> web.StreamResponse:
    body = json_body(request)
    prompt = body.get("prompt")
    prompt_text = " ".join(map(text_of, prompt)) if isinstance(prompt, list) else text_of(prompt)
    logprobs = body.get("logprobs")
    answer = Answer(
        sequence=request[SEQUENCE],
        created=int(request.app[CLOCK]()),
        model=get_str(body, "model", "demo-chat"),
        replies=request[CONTROLS].replies(
            get_int(body, "n", 1, 1, MAX_CHOICES), default_reply(prompt_text, None)
        ),
        chunking=request[CONTROLS].chunking,
        top_logprobs=None if logprobs is None else get_int(body, "logprobs", 0, 0, MAX_LOGPROBS),
        include_usage=get_bool(get_dict(body, "stream_options"), "include_usage"),
        prompt_tokens=count_tokens(prompt_text),
    )
    if get_bool(body, "stream"):
        return await send_events(request, stream_events(answer))
    return await send_json(request, completion(answer))


def stream_events(answer: Answer) -> list[Event]:
    """Every event of the stream, ``[DONE]`` last."""
    choices = interleave([_choice_chunks(answer, i) for i in range(len(answer.replies))])
    chunks = [{**_envelope(answer), "choices": [choice]} for choice in choices]
    if answer.include_usage:
        chunks.append({**_envelope(answer), "choices": [], "usage": _usage(answer)})
    return [*(Event(orjson.dumps(chunk).decode()) for chunk in chunks), DONE]


def completion(answer: Answer) -> dict[str, Any]:
    """The non-streamed ``text_completion``."""
    choices = []
    for index, reply in enumerate(answer.replies):
        text = reply.content or ""
        tokens = answer.chunking.split(text)
        choices.append(_choice(index, text, _logprobs(answer, tokens, 0), "stop"))
    return {**_envelope(answer), "choices": choices, "usage": _usage(answer)}


def _choice_chunks(answer: Answer, index: int) -> list[dict[str, Any]]:
    """One choice's chunks: a text piece each, then an empty one carrying ``finish_reason``."""
    chunks = []
    offset = 0
    for piece in answer.chunking.split(answer.replies[index].content or ""):
        chunks.append(_choice(index, piece, _logprobs(answer, [piece], offset), None))
        offset += len(piece)
    chunks.append(_choice(index, "", None, "stop"))
    return chunks


def _choice(
    index: int, text: str, logprobs: dict[str, Any] | None, finish_reason: str | None
) -> dict[str, Any]:
    return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}


def _logprobs(answer: Answer, tokens: list[str], offset: int) -> dict[str, Any] | None:
    top = answer.top_logprobs
    return None if top is None else legacy_logprobs(tokens, offset, top)


def _envelope(answer: Answer) -> dict[str, Any]:
    return {
        "id": f"cmpl-demo{answer.sequence:08d}",
        "object": "text_completion",
        "created": answer.created,
        "model": answer.model,
        "system_fingerprint": None,
    }


def _usage(answer: Answer) -> dict[str, Any]:
    completion_tokens = sum(count_tokens(reply.content or "") for reply in answer.replies)
    return chat_usage(answer.prompt_tokens, completion_tokens)
