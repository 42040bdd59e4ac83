"""The demo's canned answers: texts written so that a moderating gateway visibly acts.

A new user who points a client at ``sluicegate serve --upstream demo`` should see, in one
answer, something redacted (an e-mail address, an OpenAI-style key, a card number) and a
stream cut off (a banned phrase near the end). Every script also carries multi-byte
characters, so byte-level wire faults split UTF-8 sequences without any extra set-up.
The choice depends only on the prompt, so the same question always gets the same answer.
"""

from __future__ import annotations

import re

import orjson

from gateway.demo.reply import Reply, ToolCallSpec

TOUR = (
    "Hi! I'm the Sluicegate demo model — everything you read here went through the gateway "
    "first. You can reach our support team at dana.reyes@example.com, and the staging key is "
    "sk-proj-Qx7mV2pLk9Rt4Wz8Nb3Hc6Jd for now. The test card on file is 4111 1111 1111 1111, "
    "expiring 12/29. ✓ One more thing: the launch plan for Project Nightingale moves to next "
    "Tuesday, so keep it quiet. 🙂"
)

SECRETS = (
    "Sure — here are the credentials from the vault. Primary key: "
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t, backup key: sk-proj-Uv1wXy4zAb7cDe0fGh3iJk6L. "
    "Questions go to ops@example.com. Please rotate both after the Project Nightingale "
    "review — they still work today."
)

BILLING = (
    "Your billing profile is up to date ✓. Card: 4111 1111 1111 1111 (Visa, expires 12/29); "
    "receipts go to billing@example.org, and the café invoice of €42.50 was paid on Monday. "
    "The refund for Project Nightingale is still pending."
)

TOOL_ARGUMENTS = orjson.dumps(
    {
        "to": "dana.reyes@example.com",
        "subject": "Staging access — as promised",
        "body": "Use sk-proj-Qx7mV2pLk9Rt4Wz8Nb3Hc6Jd until Friday.",
    }
).decode()

_KEYWORDS: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({"secret", "secrets", "key", "keys", "password", "token", "credentials"}), SECRETS),
    (frozenset({"card", "payment", "billing", "invoice", "refund"}), BILLING),
)

_WORD = re.compile(r"\w+")


def script_for(prompt: str) -> str:
    """The first script whose keywords occur in the prompt, else the tour."""
    words = {word.lower() for word in _WORD.findall(prompt)}
    return next((text for keywords, text in _KEYWORDS if keywords & words), TOUR)


def default_reply(prompt: str, tool_name: str | None) -> Reply:
    """The demo's answer: a call to the first offered tool, else a script chosen by keyword."""
    if tool_name is not None:
        return Reply(tool_calls=(ToolCallSpec(name=tool_name, arguments=TOOL_ARGUMENTS),))
    return Reply(content=script_for(prompt))
