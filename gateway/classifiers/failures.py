"""Every way a classifier call can fail, turned into a short, text-free ``Verdict.error``.

Labels reach metrics and logs, so they are a small fixed set and never carry anything a
server or a user wrote: an SDK error's message may quote the request, so only its type
and status are read. The policy's ``on_error`` then decides what an error verdict does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import openai

from gateway.sluice.verdicts import Verdict

log = logging.getLogger("sluicegate.classifiers")

TIMEOUT = "timeout"
HTTP_429 = "http_429"
HTTP_5XX = "http_5xx"
HTTP_AUTH = "http_auth"
HTTP_4XX = "http_4xx"
CONNECTION = "connection"
UNPARSEABLE = "unparseable"
REFUSED = "refused"
INTERNAL = "internal"


class Unparseable(Exception):
    """The classifier answered, but not in a form its parser knows."""


class Refused(Exception):
    """The classifier declined to judge (a refusal, or its own content filter)."""


def error_label(exc: BaseException) -> str:
    """The label of a failure; the order matters (a timeout is a connection error too)."""
    if isinstance(exc, TimeoutError | openai.APITimeoutError):
        return TIMEOUT
    if isinstance(exc, openai.APIConnectionError):
        return CONNECTION
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status == 429:
            return HTTP_429
        if status >= 500:
            return HTTP_5XX
        if status in (401, 403):
            return HTTP_AUTH
        return HTTP_4XX
    if isinstance(exc, Refused):
        return REFUSED
    if isinstance(exc, Unparseable | openai.APIResponseValidationError | ValueError):
        return UNPARSEABLE  # ValueError: a body that is not JSON, or not the JSON expected
    return INTERNAL


async def guarded(call: Callable[[], Awaitable[Verdict]], timeout: float) -> Verdict:  # noqa: ASYNC109
    """Run ``call`` within ``timeout`` seconds (its retries included); failures are verdicts.

    ``asyncio.timeout`` re-raises a cancellation that came from outside, so a stream that
    goes away still cancels its pending verdicts.
    """
    try:
        async with asyncio.timeout(timeout):
            return await call()
    except Exception as exc:
        label = error_label(exc)
        log.debug("classifier call failed: %s (%s)", label, type(exc).__name__)
        return Verdict(flagged=False, error=label)
