"""Text the adapters do not know: moderated as text, never passed (default deny).

Upstreams add fields faster than adapters learn them: OpenRouter's
``delta.reasoning_details[].text``, LiteLLM's ``thinking_blocks``, Mistral's content
parts, Azure's filter results, a new Responses item type. A proxy that moderates the
fields it knows and copies the rest leaks through the first one it has not met. So
every string a client can read is one of three things:

* a **known text channel**, moderated by its adapter;
* a **structural value** on a short allow-list (ids, types, roles, enums, model names,
  base64 signatures), accepted as it is only if its shape fits and no rule fires on it
  as a whole; otherwise it is moderated like any unknown text;
* **unknown text**. Inside a streamed delta it is a channel per JSON path (``feed``), so
  deltas of the same path concatenate and a secret split across events is caught;
  anywhere else it is moderated whole, where it stands.

Member names are text too: in anything the adapter does not know, a key that is not
shaped like an identifier, or that a rule fires on, is dropped with its value.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from gateway.adapters.base import ChannelHit
from gateway.sluice import SluiceConfig, moderate

#: Where a value sits below the node an adapter hands over, e.g. ``("reasoning", 0)``.
Path = tuple[str | int, ...]
#: Feeds unknown delta text at ``path`` to its channel; returns what may go out now.
Feed = Callable[[Path, str], str]

_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,256}")
_ENUM = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_MODEL = re.compile(r"[A-Za-z0-9_.:/@+\-]{1,256}")
_BASE64 = re.compile(r"[A-Za-z0-9+/=_\-]*")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")

#: Keys whose string values are structure, not prose, with the shape they must have.
STRUCTURAL: dict[str, re.Pattern[str]] = {
    **dict.fromkeys(
        ("id", "item_id", "call_id", "tool_call_id", "response_id", "system_fingerprint"), _ID
    ),
    **dict.fromkeys(
        (
            "object",
            "type",
            "role",
            "status",
            "finish_reason",
            "native_finish_reason",
            "service_tier",
            "format",
            "severity",
            "name",
        ),
        _ENUM,
    ),
    "model": _MODEL,
    **dict.fromkeys(("obfuscation", "signature", "encrypted_content", "data"), _BASE64),
}

#: Texts up to this long are remembered by the clean-text cache (65,536 of them at most).
_CACHED_CHARS = 256

#: The first step of a channel path below which every member name came from upstream.
UNKNOWN = "unknown"


class Unknown:
    """Moderates one value the adapter does not know, collecting the hits it decides.

    Built per call; ``feed`` is given only where the value is a streamed delta. Hits of
    whole-text moderation are named ``name`` (the gateway's own vocabulary, never an
    upstream key, so no upstream text reaches the audit log through a channel name).
    """

    __slots__ = ("blank", "config", "cut", "feed", "hits", "name")

    def __init__(
        self, config: SluiceConfig, name: str, feed: Feed | None = None, *, blank: bool = False
    ) -> None:
        self.config = config
        self.name = name
        self.feed = feed
        self.blank = blank  # text emptied, structure kept: an echo that is not final yet
        self.hits: list[ChannelHit] = []
        self.cut = False  # a block fired in some text moderated whole

    def value(self, value: Any, path: Path = ()) -> Any:
        """``value`` rewritten: strings moderated, unsafe member names dropped."""
        if isinstance(value, str):
            key = path[-1] if path else None
            if self.config.drop_unknown:  # ``unknown: drop``: only structure goes out
                shaped = isinstance(key, str) and structural(self.config, key, value)
                return value if shaped and (self.feed is None or key == "type") else ""
            if self.feed is not None:
                # A client concatenates every string of a streamed delta but ``type``
                # (the Python SDK's delta accumulation): ids, signatures and data too. So
                # in a delta they are text of a channel, and a split key joins there.
                if key == "type" and structural(self.config, key, value):
                    return value
                return self.feed(path, value)
            if isinstance(key, str) and structural(self.config, key, value):
                return value
            return "" if self.blank else self.whole(value)
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if not self.member(key):
                    continue
                out[key] = self.value(item, (*path, key))
            return out
        if isinstance(value, list):
            return [self.value(item, (*path, i)) for i, item in enumerate(value)]
        return value  # numbers, booleans and null carry no text

    def member(self, key: str) -> bool:
        """May this member name go out? Identifier-shaped and clean, or not at all."""
        return key_is_safe(self.config, key)

    def whole(self, text: str) -> str:
        """A complete text moderated where it stands; a block keeps what precedes it."""
        if not text or (len(text) <= _CACHED_CHARS and _cached_is_clean(self.config, text)):
            return text
        step = moderate(self.config, text)  # once: a long text is not checked first
        self.hits.extend(ChannelHit(self.name, hit) for hit in step.hits)
        self.cut |= step.cut
        return "".join(piece.text for piece in step.pieces)


def structural(config: SluiceConfig, key: str, value: str) -> bool:
    """A structural value: the right shape for its key, and no rule fires on it whole."""
    shape = STRUCTURAL.get(key)
    return (
        shape is not None and shape.fullmatch(value) is not None and token_is_clean(config, value)
    )


def key_is_safe(config: SluiceConfig, key: str) -> bool:
    """May a member name go out? Identifier-shaped (so short) and clean."""
    return _KEY.fullmatch(key) is not None and token_is_clean(config, key)


def token_is_clean(config: SluiceConfig, token: str) -> bool:
    """``is_clean`` for short recurring texts (logprob alternatives, ids, model names,
    member names): few distinct ones recur across every stream, so a process-wide cache
    makes checking each one nearly free. Only short ones are cached: upstream chooses
    their length, and the cache must stay small."""
    if len(token) <= _CACHED_CHARS:
        return _cached_is_clean(config, token)
    return is_clean(config, token)


@lru_cache(maxsize=1 << 16)
def _cached_is_clean(config: SluiceConfig, token: str) -> bool:
    return is_clean(config, token)


def is_clean(config: SluiceConfig, text: str) -> bool:
    """Whether no enforcing rule changes ``text``: for side texts (annotation titles, URLs)
    that are dropped whole rather than rewritten when a rule fires on them."""
    step = moderate(config, text)
    return not step.cut and not any(p.redacted for p in step.pieces)


def carries_text(value: Any, key: str | None = None) -> bool:
    """Whether a value holds any text a client could read (structure aside)."""
    if isinstance(value, str):
        shape = STRUCTURAL.get(key) if key is not None else None
        return bool(value) and (shape is None or shape.fullmatch(value) is None)
    if isinstance(value, dict):
        return any(carries_text(v, k) for k, v in value.items())
    if isinstance(value, list):
        return any(carries_text(v) for v in value)
    return False


def blank(value: Any, key: str | None = None) -> Any:
    """A delta's structure with its text emptied: a frame to release held text in (in a
    delta only ``type`` is structure; every other string is text a client joins)."""
    if isinstance(value, str):
        return value if key == "type" else ""
    if isinstance(value, dict):
        return {k: blank(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [blank(v) for v in value]
    return value


def place(node: dict[str, Any] | list[Any], path: Path, text: str) -> None:
    """Append ``text`` at ``path`` below ``node``, creating what is missing on the way.

    Integer steps are list positions (a missing one is padded with empty objects), so
    held text of ``reasoning_details[0].text`` lands where its client expects it.
    """
    here: Any = node
    for step, after in itertools.pairwise(path):
        here = _child(here, step, [] if isinstance(after, int) else {})
    last = path[-1]
    if isinstance(here, list) and isinstance(last, int):
        while len(here) <= last:
            here.append("")
        previous = here[last]
        here[last] = (previous if isinstance(previous, str) else "") + text
    elif isinstance(here, dict) and isinstance(last, str):
        previous = here.get(last)
        here[last] = (previous if isinstance(previous, str) else "") + text


def _child(here: Any, step: str | int, empty: dict[str, Any] | list[Any]) -> Any:
    if isinstance(here, list) and isinstance(step, int):
        while len(here) <= step:
            here.append({})
        if not isinstance(here[step], dict | list):
            here[step] = empty
        return here[step]
    if isinstance(here, dict) and isinstance(step, str):
        child = here.get(step)
        if not isinstance(child, dict | list):
            child = here[step] = empty
        return child
    return empty  # a shape that cannot hold the path: the text has nowhere to go
