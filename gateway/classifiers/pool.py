"""The process's shared classifier resources: one SDK client per base URL, local models.

Every rule of every policy that talks to the same server shares one ``AsyncOpenAI`` and
so one HTTP connection pool: a verdict per sentence of every stream must not pay for a
TCP (and TLS) handshake. Keys do not split the pool: ``with_options(api_key=...)`` makes
a light copy that reuses the parent's HTTP client (``openai/lib/_client_auth.py``,
``asynccopy``: ``http_client = http_client or self._client``), so the pool holds one
root client per URL and copies for the keys. Closing the roots closes the connections.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import openai

from gateway.classifiers.base import ClassifyInput

NO_KEY = "sluicegate-no-key"
"""Sent when there is no key at all: keyless local servers (vLLM, Ollama) ignore it, and
the SDK would otherwise fall back to ``OPENAI_API_KEY`` from the environment."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Which key a classifier's calls carry.

    ``fixed``: the key from ``api_key_env`` or the gateway's upstream key, decided at build
    time. Without one, the client's own key is forwarded, but only to the gateway's own
    upstream (``forward_client_key``), where the proxy sends it anyway; another server
    gets no key rather than a user's credential for a different service.
    """

    fixed: str | None
    forward_client_key: bool

    def key_for(self, item: ClassifyInput) -> str | None:
        """The per-call key, or ``None`` when the client's configured key applies."""
        if self.fixed is None and self.forward_client_key and item.api_key:
            return item.api_key
        return None


class ClientPool:
    """SDK clients keyed by base URL (and fixed key), and local models by name.

    Build one per process (per gateway app) and ``await close()`` it at shutdown. Clients
    are made lazily and outside any event loop, so building classifiers is synchronous.
    """

    def __init__(self) -> None:
        self._roots: dict[str, openai.AsyncOpenAI] = {}
        self._keyed: dict[tuple[str, str], openai.AsyncOpenAI] = {}
        self._models: dict[str, object] = {}

    def client(self, base_url: str, api_key: str | None = None) -> openai.AsyncOpenAI:
        """The shared client for ``base_url`` carrying ``api_key`` (``None``: no key)."""
        base_url = base_url.rstrip("/")
        root = self._roots.get(base_url)
        if root is None:
            # Retries and timeouts are set per classifier (``with_options``); the SDK's
            # defaults here are only what a copy inherits.
            root = openai.AsyncOpenAI(base_url=base_url, api_key=NO_KEY)
            self._roots[base_url] = root
        if api_key is None:
            return root
        keyed = self._keyed.get((base_url, api_key))
        if keyed is None:
            keyed = root.with_options(api_key=api_key)
            self._keyed[(base_url, api_key)] = keyed
        return keyed

    def local_model(self, name: str, load: Callable[[], object]) -> object:
        """The loaded local model ``name``, loaded once for all the rules that use it."""
        model = self._models.get(name)
        if model is None:
            model = load()
            self._models[name] = model
        return model

    async def close(self) -> None:
        """Close every connection; copies share their root's HTTP client, so roots suffice."""
        roots = list(self._roots.values())
        self._roots.clear()
        self._keyed.clear()
        for root in roots:
            await root.close()
