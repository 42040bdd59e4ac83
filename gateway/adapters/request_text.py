"""Default deny for input text: every string of a request body is text, unless structural.

The upstream model reads far more than the fields an adapter knows (tool descriptions,
JSON-schema titles and enums, message names, parts of types added last month). So no
adapter lists its texts any more: a ``RequestText`` walks the whole body, and every
string leaf *and every member name* is input text for the input rules, except what its
``Spec`` (one per API, ``request_shapes``) marks as structural:

- a known member *name* (``role``, ``messages``, ``properties``) is not text; any other
  name is (a JSON-schema property name, an extension key, a metadata key);
- a string *value* under a known member with a ``shape`` is structural only if it
  matches the shape in full (an enum, base64 bytes); one that does not match is
  moderated like any text;
- under a ``tokens`` member numbers are token ids, and an ``unreadable`` member (token
  ids, embeddings) holds input the gateway cannot read at all: both become
  ``Kind.UNREADABLE`` leaves, which ``inputs.moderate_request`` refuses under a policy
  that enforces anything.

Lists are transparent: a list is walked element by element with the spec of the member
holding it (``stop: [...]``, ``content: [...]``, ``prompt: [[1, 2], [3]]``).

The walk is linear in the body and keeps no copies: an explicit stack (a body nests up
to 1024 levels), one ``(parent, key)`` pair per container or text it yields, and a path
tuple only for a leaf someone asks about (``Leaf.path``): a hit, a rewrite, a refusal.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gateway.adapters.base import JSONPath, TextField

#: ``(parent, key)`` down to the root (``None``): a path that costs one pair per step.
Trail = tuple["Trail", str | int] | None


class Kind(enum.Enum):
    TEXT = "text"  # a string value: moderated, rewritten in place where a rule redacts
    NAME = "name"  # a member name: moderated; no rewrite can rename it, so one refuses
    UNREADABLE = "unreadable"  # token ids, embeddings: nothing to moderate, so refused


@dataclass(frozen=True, slots=True)
class MemberName(TextField):
    """A member name the model reads (a schema property, an extension key)."""


@dataclass(frozen=True, slots=True)
class Unreadable(TextField):
    """Input the gateway cannot read (token ids, embeddings); ``text`` is empty."""


class Leaf(NamedTuple):
    """One thing the walk found; the path is built only when asked for."""

    kind: Kind
    text: str
    trail: Trail

    @property
    def path(self) -> JSONPath:
        return path_of(self.trail)

    def field(self) -> TextField:
        path = self.path
        if self.kind is Kind.NAME:
            return MemberName(path, self.text)
        if self.kind is Kind.UNREADABLE:
            return Unreadable(path, "")
        return TextField(path, self.text)


def path_of(trail: Trail, masked: tuple[Trail, ...] = ()) -> JSONPath:
    """The path a trail spells; a step in ``masked`` (a member name a rule matched) as ``*``."""
    parts: list[str | int] = []
    while trail is not None:
        up, key = trail
        parts.append("*" if masked and any(trail is m for m in masked) else key)
        trail = up
    parts.reverse()
    return tuple(parts)


def shape(*patterns: str) -> re.Pattern[str]:
    """A structural shape: matches a whole string of one of ``patterns`` (ASCII classes)."""
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.ASCII)


@dataclass(frozen=True, slots=True, eq=False)
class Spec:
    """What one position of a request holds.

    ``fields`` are the member names known here (not text; their values follow their own
    spec); every other member's name is text and its value follows ``members`` (by
    default ``FREE``: all text). ``shape`` makes a string value here structural when it
    matches in full. ``fields`` may be filled after construction, for recursive shapes
    (JSON schema).
    """

    shape: re.Pattern[str] | None = None
    fields: dict[str, Spec] = field(default_factory=dict)
    members: Spec | None = None
    tokens: bool = False  # numbers here are token ids
    unreadable: bool = False  # any value here is input the gateway cannot read


#: Nothing known: every string and every member name below is text.
FREE = Spec()


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


class RequestText:
    """The input text of one API's request bodies, as a ``request_fields`` callable."""

    __slots__ = ("spec",)

    def __init__(self, spec: Spec) -> None:
        self.spec = spec

    def __call__(self, body: dict[str, Any]) -> Iterator[TextField]:
        """Every leaf as a ``TextField`` (``MemberName``, ``Unreadable`` by kind)."""
        for leaf in self.leaves(body):
            yield leaf.field()

    def leaves(self, body: dict[str, Any]) -> Iterator[Leaf]:
        """Every text, member name and unreadable value, in document order (a name
        before its value), structural values left out."""
        stack: list[tuple[Iterator[tuple[Any, Any]], Spec, Trail, bool]] = [
            (iter(body.items()), self.spec, None, True)
        ]
        while stack:
            items, spec, trail, keyed = stack[-1]
            for key, value in items:
                here: Trail = None  # built once, shared by a member name and its value
                if not keyed:
                    child = spec
                else:
                    known = spec.fields.get(key)
                    if known is None:
                        here = (trail, key)
                        yield Leaf(Kind.NAME, key, here)
                        child = spec.members or FREE
                    else:
                        child = known
                if child.unreadable:
                    if not _is_empty(value):
                        yield Leaf(Kind.UNREADABLE, "", here or (trail, key))
                elif isinstance(value, str):
                    pattern = child.shape
                    if pattern is None or pattern.fullmatch(value) is None:
                        yield Leaf(Kind.TEXT, value, here or (trail, key))
                elif isinstance(value, dict):
                    stack.append((iter(value.items()), child, here or (trail, key), True))
                    break
                elif isinstance(value, list):
                    here = here or (trail, key)
                    if child.tokens and any(_is_number(v) for v in value):
                        yield Leaf(Kind.UNREADABLE, "", here)
                    stack.append((enumerate(value), child, here, False))
                    break
                elif keyed and child.tokens and _is_number(value):
                    yield Leaf(Kind.UNREADABLE, "", here or (trail, key))
            else:
                stack.pop()
