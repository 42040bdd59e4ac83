"""Input classifier rules: the prompt judged beside the upstream call, not before it.

Waiting for a verdict before sending upstream would add a classifier's latency to every
request; sending at once and holding the answer costs a safe prompt nothing. So the
verdict runs while upstream starts answering, nothing of the answer (not even its
headers) reaches the client until it is in, and a blocked prompt still gets the 400
``content_policy_violation`` while the upstream call is cancelled (``Exchange.relay``).

The newest text is judged first and at most ``classifier_input_chars`` of it: earlier
turns of a conversation were judged when they were new (and are in the verdict cache).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from gateway.adapters.base import ApiAdapter, ChannelHit, TextField
from gateway.adapters.inputs import POLICY_VIOLATION, REJECTED
from gateway.adapters.request_text import Unreadable
from gateway.policy.model import Direction
from gateway.proxy.errors import error_response
from gateway.proxy.relay import Exchange
from gateway.proxy.state import SETTINGS
from gateway.sluice import Action
from gateway.sluice.classify import verdict_hit
from gateway.sluice.segments import Segmenter
from gateway.sluice.verdicts import ClassifierRule, Segmenting, VerdictRequest

#: Characters of the user's last message a guard or judge sees beside an answer.
PROMPT_CHARS = 4000


def judge_input(
    exchange: Exchange, adapter: ApiAdapter, body: dict[str, Any]
) -> asyncio.Future[web.Response | None] | None:
    """Start judging the request's text; ``None`` when the policy has no such rules.

    Also gives the exchange the prompt its output classifiers read.
    """
    policy = exchange.policy
    rules = policy.input.classifiers
    if not rules and not policy.output.classifiers:
        return None
    fields = [f for f in adapter.request_fields(body) if not isinstance(f, Unreadable)]
    if policy.output.classifiers and fields:
        exchange.prompt = fields[-1].text[-PROMPT_CHARS:]
    if not rules or not fields:
        return None
    budget = exchange.request.app[SETTINGS].classifier_input_chars
    return asyncio.ensure_future(_judge(exchange, rules, _newest(fields, budget)))


def _newest(fields: list[TextField], budget: int) -> list[TextField]:
    """The last fields, up to ``budget`` characters (the oldest one cut from its end)."""
    kept: list[TextField] = []
    for field in reversed(fields):
        if budget <= 0:
            break
        text = field.text[-budget:]
        kept.append(TextField(field.path, text))
        budget -= len(text)
    return kept


async def _judge(
    exchange: Exchange, rules: tuple[ClassifierRule, ...], fields: list[TextField]
) -> web.Response | None:
    requests: list[VerdictRequest] = []
    where: list[tuple[ClassifierRule, TextField, int, int]] = []
    for rule in rules:
        chars = rule.segmenting.chars
        for field in fields:
            windows = Segmenter(Segmenting(sentences=False, chars=chars, first_chars=chars))
            for segment in windows.feed(field.text) + windows.finish():
                if segment.text.strip():
                    requests.append(VerdictRequest(len(requests), rule.id, segment.text, ""))
                    where.append((rule, field, segment.start, segment.end))
    verdicts = await exchange.verdicts(user=True).all(requests)
    fail_closed = exchange.policy.input.fail_closed
    hits: list[ChannelHit] = []
    blocked: TextField | None = None
    for request_id, verdict in sorted(verdicts, key=lambda found: found[0]):
        rule, field, start, end = where[request_id]
        hit = verdict_hit(rule, verdict, start, end, fail_closed)
        if hit is None:
            continue
        hits.append(ChannelHit("input:" + field.param, hit))
        if hit.action is Action.BLOCK and blocked is None:
            blocked = field
    exchange.report(hits, Direction.INPUT)
    if blocked is None:
        return None
    exchange.refused(tuple(hits))
    return error_response(
        400,
        REJECTED,
        code=POLICY_VIOLATION,
        param=blocked.param,
    )
