"""Every metric, declared once.

Labels take bounded values only (route, status class, policy and rule ids from loaded
policies, actions, directions, reasons), never request ids, users or text. Metrics live
in a ``Metrics`` object built on a registry so tests get a fresh ``CollectorRegistry``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_HOLD_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "sluicegate_requests_total", "Requests answered.", ["route", "status"], registry=r
        )
        self.duration = Histogram(
            "sluicegate_request_duration_seconds",
            "Time from request to the end of the response body.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.active_streams = Gauge(
            "sluicegate_active_streams", "Streamed responses in progress.", registry=r
        )
        self.rule_hits = Counter(
            "sluicegate_rule_hits_total",
            "Rule hits, by what was done.",
            ["policy", "rule", "action", "direction"],
            registry=r,
        )
        self.holdback = Histogram(
            "sluicegate_holdback_seconds",
            "How long text was held back before release.",
            buckets=_HOLD_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "sluicegate_time_to_first_token_seconds",
            "Time from request to the first text sent to the client.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "sluicegate_upstream_errors_total",
            "Upstream failures, by kind.",
            ["reason"],
            registry=r,
        )
        self.policy_reloads = Counter(
            "sluicegate_policy_reloads_total", "Policy reloads, by result.", ["result"], registry=r
        )
        self.stream_ends = Counter(
            "sluicegate_stream_ends_total",
            "How moderated streams ended.",
            ["route", "outcome"],
            registry=r,
        )
