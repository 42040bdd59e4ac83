"""Input rules over a request body, for every API shape alike.

Default deny (``request_text``): every string and member name of the body is checked,
except the structural values each API's allow-list names (``request_shapes``). Checking,
rewriting redacted strings in place and naming the first refused field is the same for
every API. A request is refused (``InputVerdict.blocked`` names the field, ``code`` says
why) when:

- a block rule fires (``content_policy_violation``);
- a rule would redact a member name: no rewrite can rename a key safely (a schema's
  ``required`` and ``$ref`` name it too), so the request is refused as if blocked
  (``content_policy_violation``);
- the body holds input the gateway cannot read (token ids, embeddings) and the policy
  enforces anything on input (``unreadable_input``). A shadow policy, or one whose input
  rules only flag, changes nothing and lets it pass.

Each distinct short string is moderated once per request: schemas and histories repeat
the same keys and values many times.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gateway.adapters.base import ApiAdapter, ChannelHit, Hits, JSONPath, TextField
from gateway.adapters.request_text import (
    Kind,
    Leaf,
    MemberName,
    RequestText,
    Trail,
    Unreadable,
    path_of,
)
from gateway.sluice import Action, Hit, SluiceConfig, moderate

POLICY_VIOLATION = "content_policy_violation"
UNREADABLE_INPUT = "unreadable_input"
REJECTED = "The request was rejected by the content policy."
_RENAME = (
    "The request was rejected by the content policy: a rule matched a member name, "
    "which the gateway cannot rewrite."
)
_UNREADABLE = (
    "The gateway cannot moderate this input (token ids or embeddings); send the prompt as text."
)
#: Strings up to this long are moderated once per request however often they repeat.
_MEMO_CHARS = 1024


@dataclass(frozen=True, slots=True)
class InputVerdict:
    """``blocked`` names the first field refused (``code``, ``message`` say why); else
    ``body`` is safe to send."""

    body: dict[str, Any]
    hits: Hits = ()
    blocked: TextField | None = None
    changed: bool = False
    code: str = POLICY_VIOLATION
    message: str = REJECTED


def moderate_request(
    adapter: ApiAdapter, body: dict[str, Any], config: SluiceConfig
) -> InputVerdict:
    if not config.enforce and not config.observe and not config.classifiers:
        return InputVerdict(body)  # no input rule: nothing to find, nothing refused
    fields = adapter.request_fields
    leaves = fields.leaves(body) if isinstance(fields, RequestText) else _leaves(fields(body))
    # What a classifier cannot read is refused like what a pattern cannot.
    enforcing = bool(config.enforce) or any(r.action is not Action.FLAG for r in config.classifiers)
    seen: dict[str, tuple[tuple[Hit, ...], bool, str | None]] = {}
    hits: list[ChannelHit] = []
    masked: tuple[Trail, ...] = ()  # member names a rule matched: never spelled in a channel
    changed = False
    for leaf in leaves:
        if leaf.kind is Kind.UNREADABLE:
            if enforcing:
                return InputVerdict(
                    body, tuple(hits), leaf.field(), code=UNREADABLE_INPUT, message=_UNREADABLE
                )
            continue
        text = leaf.text
        known = seen.get(text)
        if known is None:
            result = moderate(config, text)
            out = "".join(p.text for p in result.pieces)
            known = (result.hits, result.cut, None if out == text else out)
            if len(text) <= _MEMO_CHARS:
                seen[text] = known
        found, cut, rewritten = known
        if not found and rewritten is None:
            continue
        named = leaf.kind is Kind.NAME
        if named:
            masked = (*masked, leaf.trail)
        channel = "input:" + TextField(path_of(leaf.trail, masked), "").param
        hits.extend(ChannelHit(channel, hit) for hit in found)
        if cut:
            return InputVerdict(body, tuple(hits), leaf.field())
        if rewritten is not None:
            if named:
                return InputVerdict(body, tuple(hits), leaf.field(), message=_RENAME)
            _set(body, leaf.path, rewritten)
            changed = True
    return InputVerdict(body, tuple(hits), changed=changed)


def _leaves(fields: Iterator[TextField]) -> Iterator[Leaf]:
    """Leaves from an adapter that lists ``TextField``s itself."""
    for field in fields:
        trail: Trail = None
        for part in field.path:
            trail = (trail, part)
        if isinstance(field, Unreadable):
            yield Leaf(Kind.UNREADABLE, "", trail)
        else:
            yield Leaf(Kind.NAME if isinstance(field, MemberName) else Kind.TEXT, field.text, trail)


def _set(body: Any, path: JSONPath, value: str) -> None:
    target = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
