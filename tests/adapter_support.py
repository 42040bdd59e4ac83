"""What the pure adapter tests share: one small rule set, and a way to read output."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

from gateway.sluice import Action, Matcher, Rule, SluiceConfig

CFG = SluiceConfig(
    enforce=Matcher(
        [
            Rule("secret", r"sk-[A-Za-z0-9]{8,}", Action.REDACT, "[REDACTED]"),
            Rule("ban", r"nightingale", Action.BLOCK),
        ],
        0.1,
    ),
    observe=Matcher([], 0.1),
    max_hold=512,
)
NOTICE = dataclasses.replace(CFG, cutoff_notice=" [cut off]")
STREAMED_TOOLS = dataclasses.replace(CFG, whole_tool_calls=False)  # ``tool_arguments: stream``
SECRET = "sk-AB12CD34EF"


def split(text: str, cuts: Sequence[int]) -> list[str]:
    """``text`` cut at every point of ``cuts`` inside it (duplicates and strays ignored)."""
    points = sorted({c for c in cuts if 0 < c < len(text)})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


def every_string(value: Any) -> Iterator[str]:
    """Every string the client can read, logprob ``bytes`` decoded too."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            if k == "bytes" and isinstance(v, list):
                yield bytes(v).decode("utf-8", "replace")
            else:
                yield from every_string(v)
    elif isinstance(value, list):
        for v in value:
            yield from every_string(v)
