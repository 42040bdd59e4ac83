"""Typed application keys: all per-app state lives here, none in module globals."""

from __future__ import annotations

from aiohttp import ClientSession, web
from yarl import URL

from gateway.metrics import Metrics
from gateway.policy.store import PolicyStore
from gateway.proxy.audit import AuditLog
from gateway.settings import Settings


class Upstream:
    """Where requests go: the shared session plus the base URL (``/v1`` included)."""

    def __init__(self, session: ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")

    def url(self, v1_tail: str) -> str:
        """``/v1/chat/completions`` -> ``<base>/chat/completions``."""
        return self.base_url + v1_tail.removeprefix("/v1")

    def raw_url(self, incoming: URL) -> URL:
        """The same, keeping the client's encoding and query byte for byte."""
        query = f"?{incoming.raw_query_string}" if incoming.raw_query_string else ""
        return URL(self.url(incoming.raw_path) + query, encoded=True)


SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
POLICIES = web.AppKey("policies", PolicyStore)
UPSTREAM = web.AppKey("upstream", Upstream)
AUDIT = web.AppKey("audit", AuditLog)
REQUEST_ID = web.RequestKey("sluicegate_request_id", str)
