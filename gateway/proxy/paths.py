"""Canonical request paths, by allow-list: a path is forwarded only as the route table sees it.

The gateway decides what to moderate by the request path, and an upstream decides what to
serve by its own reading of that path. Whenever the two readings can differ, a request can
be moderated as one thing and served as another: ``/v1/Chat/Completions`` or
``/v1/chat/completions;x=1`` miss the moderated route here, yet an upstream that routes
case-insensitively or strips ``;params`` serves them as chat completions, unmoderated.
Listing the spellings that differ (``%2F``, ``..``, ``//``) never ends; so the rule is the
other way round: a path is accepted only in the one spelling every upstream reads alike.

- ASCII letters, digits, ``-``, ``.``, ``_``, ``~``, ``:`` and ``/`` only: no
  percent-encoding at all (no API id needs it), no ``;``, no spaces, no control or
  non-ASCII characters. ``:`` is there for ids only: fine-tuned models and checkpoints are
  named ``ft:gpt-4o-mini:org::id`` and the SDK sends that unencoded; a fixed word with a
  ``:`` matches no route;
- starts with ``/``; no empty segment (``//``), no trailing slash;
- no segment that ends in ``.`` (``.``, ``..``, ``completions.``: servers trim or resolve them).

The case of the fixed words (``chat``, ``completions``) is checked against the route table,
which knows them (``gateway.proxy.routes``).
"""

from __future__ import annotations

import re

_SEGMENT = re.compile(r"[A-Za-z0-9\-._~:]+")


def path_problem(raw_path: str) -> str | None:
    """Why ``raw_path`` (as received, still encoded) is not canonical, or ``None`` if it is."""
    if raw_path == "/":
        return None
    if not raw_path.startswith("/"):
        return "it does not start with '/'"
    if "%" in raw_path:
        return "it contains percent-encoding"
    if raw_path.endswith("/"):
        return "it ends with '/'"
    for segment in raw_path[1:].split("/"):
        if not segment:
            return "it has an empty segment ('//')"
        if not _SEGMENT.fullmatch(segment):
            return "it has a character other than A-Z a-z 0-9 - . _ ~ : and /"
        if segment.endswith("."):
            return "a segment ends with '.'"
    return None
