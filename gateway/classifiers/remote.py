"""What the HTTP classifiers share: the client to call with, the time allowed, the reply.

Each classifier gets a client whose retries and per-attempt timeout are its own
(``with_options``, which keeps the pool's connections). The SDK retries 408, 409, 429
and 5xx answers and connection errors with exponential backoff (0.5 s, 1 s ... with
jitter), honouring ``retry-after-ms`` / ``retry-after``; ``guarded`` bounds the whole, so
``timeout_seconds`` is per verdict, retries included.

Replies are read from the SDK's wire-named dict (``to_dict``), not its attributes: the
SDK does not validate responses, so a server's odd JSON comes back as a model with
missing or mistyped fields, and reading a dict defensively is what makes that an
``unparseable`` verdict instead of an ``AttributeError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import openai

from gateway.classifiers.base import ClassifyInput
from gateway.classifiers.failures import Refused, Unparseable
from gateway.classifiers.pool import ClientPool, Credentials

MAX_RETRIES = 2


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One classifier's view of a server: its client, key rule and time budget."""

    client: openai.AsyncOpenAI
    credentials: Credentials
    timeout: float

    @classmethod
    def build(
        cls, pool: ClientPool, base_url: str, credentials: Credentials, timeout: float
    ) -> Endpoint:
        client = pool.client(base_url, credentials.fixed).with_options(
            max_retries=MAX_RETRIES, timeout=timeout
        )
        return cls(client, credentials, timeout)

    def client_for(self, item: ClassifyInput) -> openai.AsyncOpenAI:
        """The client for this call: a light copy carrying the client's key if it is used."""
        key = self.credentials.key_for(item)
        return self.client if key is None else self.client.with_options(api_key=key)


def reply_text(completion: Any) -> str:
    """The text of a chat completion's first choice; refusals and filters are ``Refused``."""
    data = as_dict(completion)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise Unparseable("no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise Unparseable("no message")
    if message.get("refusal") or choice.get("finish_reason") == "content_filter":
        raise Refused
    content = message.get("content")
    if not isinstance(content, str):
        raise Unparseable("no content")
    return content


def as_dict(response: Any) -> dict[str, Any]:
    """The response as the server sent it (wire names), or ``Unparseable``."""
    to_dict = getattr(response, "to_dict", None)
    data = to_dict(warnings=False) if callable(to_dict) else response
    if not isinstance(data, dict):
        raise Unparseable("not a JSON object")
    return data
