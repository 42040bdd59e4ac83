"""The seam between the proxy and the OpenAI wire shapes.

The proxy moves bytes and knows nothing of ``choices`` or ``response.output_text.done``;
an adapter knows those shapes and nothing of sockets. One adapter per wire format
(chat completions, responses, legacy completions), each exposing an ``ApiAdapter``.

Data flows one way: the proxy decodes upstream SSE, hands each event to the
``StreamModerator``, encodes what it returns, and writes that to the client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.sluice import Hit, SluiceConfig
from gateway.sluice.classify import Taps
from gateway.sluice.verdicts import VerdictRequest

JSONPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class OutEvent:
    """One SSE event to send to the client (``event`` only for the Responses API)."""

    data: str
    event: str | None = None


@dataclass(frozen=True, slots=True)
class TextField:
    """A text the client sent, with where it sits in the request body."""

    path: JSONPath
    text: str

    @property
    def param(self) -> str:
        """The OpenAI-style ``param`` naming the field, e.g. ``messages[2].content``."""
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out


@dataclass(frozen=True, slots=True)
class ChannelHit:
    """A rule hit and the channel it fired in (``choices[0].content``, ``input:messages[1]``)."""

    channel: str
    hit: Hit


Hits = tuple[ChannelHit, ...]


@dataclass(frozen=True, slots=True)
class Moderated:
    """What a stream moderator returns for one call: events to send now and hits decided.

    Hits travel back with the events that carry their effect, the way the sluice returns
    a ``Step``: the caller reports them once, where they arrive, and no shared log sits
    between the layers.
    """

    events: list[OutEvent]
    hits: Hits = ()
    #: Segments to judge (classifier rules); the caller answers with ``on_verdict``.
    requests: tuple[VerdictRequest, ...] = ()
    #: Requests asked for earlier that are no longer needed (their text follows a cut).
    cancelled: tuple[int, ...] = ()
    #: (rule id, characters of a flagged segment that reached the client): async rules.
    leaked: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ModeratedBody:
    """A non-streamed body after moderation, and the hits that changed it."""

    body: dict[str, Any]
    hits: Hits = ()


class StreamModerator(Protocol):
    """Per-request state for one moderated stream."""

    def on_event(self, data: str, event: str | None) -> Moderated:
        """One upstream SSE event in; the events to send now out (maybe none)."""

    def on_eof(self) -> Moderated:
        """Upstream closed the body; flush what is held, end the stream properly."""

    def on_upstream_error(self, message: str) -> Moderated:
        """Upstream broke mid-stream: end so the SDK raises, never as a silent success."""

    @property
    def finished(self) -> bool:
        """Nothing more is needed from upstream (everything cut or ``[DONE]`` sent)."""

    @property
    def held(self) -> int:
        """Characters held back across all channels right now."""


class BodyModerator(Protocol):
    """Moderates a whole body in place; ``taps`` carry classifier rules (``sluice.classify``)."""

    def __call__(
        self, body: dict[str, Any], config: SluiceConfig, taps: Taps | None = None, /
    ) -> ModeratedBody: ...


class StreamOpener(Protocol):
    """Opens a moderator for one stream; ``taps`` as for ``BodyModerator``."""

    def __call__(
        self, body: dict[str, Any], config: SluiceConfig, taps: Taps | None = None, /
    ) -> StreamModerator: ...


@dataclass(frozen=True, slots=True)
class ApiAdapter:
    """What the proxy needs to moderate one route.

    ``request_fields`` lists every text the client sends (for input rules);
    ``moderate_response`` moderates a non-streamed body in place and returns it with its
    hits; ``stream`` opens a moderator for a streamed response.
    """

    route: str
    request_fields: Callable[[dict[str, Any]], Iterator[TextField]]
    moderate_response: BodyModerator
    stream: StreamOpener
