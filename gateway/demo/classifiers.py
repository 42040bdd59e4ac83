"""The demo's classifiers: ``POST /v1/moderations``, guard and judge models, and their controls.

They judge with ``gateway.demo.lexicon`` and answer exactly as the real thing would, so
the gateway's classifier clients run unchanged against them:

``POST /v1/moderations``
    OpenAI's shape: ``id``, ``model``, ``results[]`` of ``flagged``, ``categories``,
    ``category_scores`` and ``category_applied_input_types`` for all thirteen categories;
    one result per input string (one for a list of content parts).
Chat models (``POST /v1/chat/completions``, streamed or not)
    ``demo-llama-guard``: ``safe`` / ``unsafe\\nS1,S10``. ``demo-shieldgemma``: ``Yes`` /
    ``No`` for the policies named in ``chat_template_kwargs.guideline`` (all four when
    none). ``demo-granite-guardian``: for ``chat_template_kwargs.guardian_config`` 's risk
    (``harm`` by default), ``<score> yes </score>`` like 3.3 when asked with
    ``criteria_id``, else ``Yes\\n<confidence> High </confidence>`` like 3.2.
    ``demo-qwen3guard``: ``Safety: ...``, ``Categories: ...`` (and ``Refusal: No`` for an
    answer); mild words are ``Controversial``. Guards judge the last assistant message,
    or the last user message when there is none. ``demo-judge``: the JSON verdict
    ``{"flagged", "categories", "reason"}`` about the last user message (its ``<text>``
    part if it has one), honouring a ``json_schema`` response format's category
    ``enum``. ``demo-judge-plain``: a server without structured output, 400 for
    ``json_schema``, otherwise the verdict in prose with a fenced JSON block.
``GET`` / ``POST /demo/classifiers``
    Latency, faults and counters (``gateway.demo.classifier_controls``).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from aiohttp import web

from gateway.demo import lexicon
from gateway.demo.app_keys import CLASSIFIER_BENCH, DEMO_STATE, SEQUENCE
from gateway.demo.body import get_dict, get_list, get_str, json_body, text_of
from gateway.demo.classifier_controls import ClassifierBench, ClassifierFault
from gateway.demo.errors import DemoError
from gateway.demo.reply import Reply
from gateway.demo.sending import HANG_SECONDS, send_json

LLAMA_GUARD = "demo-llama-guard"
SHIELDGEMMA = "demo-shieldgemma"
GRANITE_GUARDIAN = "demo-granite-guardian"
QWEN3GUARD = "demo-qwen3guard"
JUDGE = "demo-judge"
JUDGE_PLAIN = "demo-judge-plain"
MODELS = (LLAMA_GUARD, SHIELDGEMMA, GRANITE_GUARDIAN, QWEN3GUARD, JUDGE, JUDGE_PLAIN)
MODERATION_MODEL = "omni-moderation-latest"

OPENAI_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
GARBAGE = "I'm sorry, I can only help with questions about our products."
POLL_SECONDS = 0.01
_TEXT_TAG = re.compile(r"<text>\n?(.*?)\n?</text>", re.DOTALL)


class ClientGone(Exception):
    """The caller hung up while the demo was waiting (latency or the ``timeout`` fault)."""


async def get_controls(request: web.Request) -> web.StreamResponse:
    return await send_json(request, request.app[CLASSIFIER_BENCH].snapshot())


async def set_controls(request: web.Request) -> web.StreamResponse:
    bench = request.app[CLASSIFIER_BENCH]
    try:
        bench.update(json_body(request))
    except ValueError as exc:
        raise DemoError(400, f"/demo/classifiers: {exc}", code="invalid_demo_control") from None
    return await send_json(request, bench.snapshot())


async def moderations(request: web.Request) -> web.StreamResponse:
    body = json_body(request)
    model = get_str(body, "model", MODERATION_MODEL)
    inputs = _moderation_inputs(body.get("input"))
    try:
        fault = await _admit(request, model)
    except ClientGone:
        return web.Response(status=499)
    payload: dict[str, Any] = {"id": f"modr-demo{request[SEQUENCE]:08d}", "model": model}
    if fault is ClassifierFault.GARBAGE:
        payload["output"] = GARBAGE
    else:
        payload["results"] = [moderation_result(text) for text in inputs]
    return await send_json(request, payload)


def moderation_result(text: str) -> dict[str, Any]:
    found = lexicon.scores(text)
    scores = {name: found.get(name, lexicon.BASELINE) for name in OPENAI_CATEGORIES}
    return {
        "flagged": any(score >= lexicon.FLAG_AT for score in scores.values()),
        "categories": {name: score >= lexicon.FLAG_AT for name, score in scores.items()},
        "category_scores": scores,
        "category_applied_input_types": {name: ["text"] for name in OPENAI_CATEGORIES},
    }


def is_classifier_model(body: dict[str, Any]) -> bool:
    return body.get("model") in MODELS


async def classifier_reply(request: web.Request, body: dict[str, Any]) -> Reply | None:
    """A demo classifier model's answer to a chat request; ``None`` if the model is not one.

    Raises ``DemoError`` for the HTTP faults and ``ClientGone`` when the caller left.
    """
    if not is_classifier_model(body):
        return None
    model = get_str(body, "model", "")
    response_format = get_dict(body, "response_format")
    if model == JUDGE_PLAIN and response_format.get("type") == "json_schema":
        # Checked before anything is counted as answered, like a server's request validation.
        raise DemoError(
            400,
            "response_format json_schema is not supported by this model.",
            param="response_format",
        )
    fault = await _admit(request, model)
    if fault is ClassifierFault.GARBAGE:
        return Reply(content=GARBAGE)
    messages = [m for m in get_list(body, "messages") if isinstance(m, dict)]
    kwargs = get_dict(body, "chat_template_kwargs")
    return Reply(content=_verdict_text(model, messages, kwargs, response_format))


async def _admit(request: web.Request, model: str) -> ClassifierFault | None:
    """Count the call, wait its latency and apply its fault; returns the body-level fault."""
    bench = request.app[CLASSIFIER_BENCH]
    fault = bench.arrive(model)
    wait = HANG_SECONDS if fault is ClassifierFault.TIMEOUT else bench.latency
    try:
        there = await _still_there(request, wait)
    except asyncio.CancelledError:  # a server with handler_cancellation (tests, e2e)
        bench.cancelled += 1
        raise
    if not there or fault is ClassifierFault.TIMEOUT:
        bench.cancelled += 1
        raise ClientGone
    if fault is ClassifierFault.HTTP_500:
        raise DemoError(
            500,
            "The server had an error while processing your request.",
            type_="server_error",
            headers=_retry_after(bench),
        )
    if fault is ClassifierFault.HTTP_429:
        raise DemoError(
            429,
            "Rate limit reached for requests (demo fault).",
            type_="requests",
            code="rate_limit_exceeded",
            headers=_retry_after(bench) or {"retry-after": "0"},
        )
    bench.answered += 1
    return fault


async def _still_there(request: web.Request, seconds: float) -> bool:
    """Wait ``seconds``; ``False`` as soon as the caller hangs up or the app shuts down.

    aiohttp tells a handler about a lost peer only through its transport, so this polls.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    closing = request.app[DEMO_STATE].closing
    while request.transport is not None and not closing.is_set():
        remaining = deadline - loop.time()
        if remaining <= 0:
            return True
        await asyncio.sleep(min(remaining, POLL_SECONDS))
    return False


def _retry_after(bench: ClassifierBench) -> dict[str, str] | None:
    if bench.retry_after_ms is None:
        return None
    return {"retry-after-ms": f"{bench.retry_after_ms:g}"}


def _moderation_inputs(given: object) -> list[str]:
    if isinstance(given, str):
        return [given]
    if isinstance(given, list) and given and all(isinstance(item, str) for item in given):
        return list(given)
    if isinstance(given, list) and given and all(isinstance(item, dict) for item in given):
        return [text_of(given)]
    raise DemoError(
        400, "input must be a string, a list of strings or a list of content parts.", param="input"
    )


def _judged(messages: list[dict[str, Any]]) -> tuple[str, str]:
    """The text a guard judges and whose it is: the last answer, else the last prompt."""
    for role in ("assistant", "user"):
        texts = [text_of(m.get("content")) for m in messages if m.get("role") == role]
        if texts:
            return texts[-1], role
    return "", "user"


def _verdict_text(
    model: str,
    messages: list[dict[str, Any]],
    kwargs: dict[str, Any],
    response_format: dict[str, Any],
) -> str:
    text, role = _judged(messages)
    found = lexicon.flagged(text)
    if model == LLAMA_GUARD:
        if not found:
            return "safe"
        return "unsafe\n" + ",".join(dict.fromkeys(lexicon.LLAMA_GUARD[c] for c in found))
    if model == SHIELDGEMMA:
        return "Yes" if _shieldgemma_hit(found, kwargs) else "No"
    if model == GRANITE_GUARDIAN:
        return _granite(found, kwargs)
    if model == QWEN3GUARD:
        return _qwen3guard(text, found, answer=role == "assistant")
    return _judge(messages, model, response_format)


def _shieldgemma_hit(found: list[str], kwargs: dict[str, Any]) -> bool:
    guideline = kwargs.get("guideline")
    asked = [
        policy
        for policy in lexicon.SHIELDGEMMA_POLICIES
        if not isinstance(guideline, str) or policy.casefold() in guideline.casefold()
    ]
    return any(lexicon.SHIELDGEMMA[c] in asked for c in found)


def _granite(found: list[str], kwargs: dict[str, Any]) -> str:
    config = kwargs.get("guardian_config")
    config = config if isinstance(config, dict) else {}
    risk = config.get("criteria_id") or config.get("risk_name") or "harm"
    yes = any(risk in lexicon.GRANITE_RISKS[c] for c in found)
    if "criteria_id" in config:
        return f"<score> {'yes' if yes else 'no'} </score>"
    return f"{'Yes' if yes else 'No'}\n<confidence> High </confidence>"


def _qwen3guard(text: str, found: list[str], *, answer: bool) -> str:
    mild = lexicon.mild(text)
    if found:
        label, named = "Unsafe", found
    elif mild:
        label, named = "Controversial", mild
    else:
        label, named = "Safe", []
    names = ", ".join(dict.fromkeys(lexicon.QWEN3GUARD[c] for c in named)) or "None"
    lines = [f"Safety: {label}", f"Categories: {names}"]
    if answer:
        lines.append("Refusal: No")
    return "\n".join(lines)


def _judge(messages: list[dict[str, Any]], model: str, response_format: dict[str, Any]) -> str:
    prompts = [text_of(m.get("content")) for m in messages if m.get("role") == "user"]
    text = prompts[-1] if prompts else ""
    tagged = _TEXT_TAG.search(text)
    found = lexicon.flagged(tagged.group(1) if tagged else text)
    allowed = _schema_enum(response_format)
    if allowed is not None:
        found = [c for c in found if c in allowed]
    verdict = {
        "flagged": bool(found),
        "categories": found,
        "reason": f"mentions {', '.join(found)}" if found else None,
    }
    encoded = orjson.dumps(verdict).decode()
    if model == JUDGE_PLAIN:
        return f"Here is my verdict:\n```json\n{encoded}\n```"
    return encoded


def _schema_enum(response_format: dict[str, Any]) -> set[str] | None:
    """The category names a ``json_schema`` response format allows, if it lists them."""
    try:
        items = response_format["json_schema"]["schema"]["properties"]["categories"]["items"]
        return set(items["enum"])
    except (KeyError, TypeError):
        return None
