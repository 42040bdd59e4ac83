"""Input rules over a request body, for every API shape alike.

Each adapter only lists where texts sit (``request_fields``); checking them, rewriting
redacted ones in place and naming the first blocked field is the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.adapters.base import ApiAdapter, ChannelHit, Hits, JSONPath, TextField
from gateway.sluice import SluiceConfig, moderate


@dataclass(frozen=True, slots=True)
class InputVerdict:
    """``blocked`` names the first field a block rule fired on; else ``body`` is safe to send."""

    body: dict[str, Any]
    hits: Hits = ()
    blocked: TextField | None = None
    changed: bool = False


def moderate_request(
    adapter: ApiAdapter, body: dict[str, Any], config: SluiceConfig
) -> InputVerdict:
    changed = False
    hits: list[ChannelHit] = []
    for field in list(adapter.request_fields(body)):
        result = moderate(config, field.text)
        hits.extend(ChannelHit(f"input:{field.param}", hit) for hit in result.hits)
        if result.cut:
            return InputVerdict(body, tuple(hits), blocked=field)
        text = "".join(p.text for p in result.pieces)
        if text != field.text:
            _set(body, field.path, text)
            changed = True
    return InputVerdict(body, tuple(hits), changed=changed)


def _set(body: Any, path: JSONPath, value: str) -> None:
    target = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
