"""Every metric, declared once.

Labels take bounded values only (route, status class, policy and rule ids from loaded
policies, actions, directions, reasons), never request ids, users or text. Metrics live
in a ``Metrics`` object built on a registry so tests get a fresh ``CollectorRegistry``.

With ``--workers`` above 1 every worker writes its values to files in the directory the
supervisor names in ``PROMETHEUS_MULTIPROC_DIR`` (read by prometheus-client when it is
first imported), and ``exposition`` merges all workers' files, so any worker's
``/metrics`` reports the whole server. A ``Gauge`` therefore needs a ``multiprocess_mode``
(``livesum`` for a count of things in progress); counters and histograms need nothing.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_HOLD_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(
        self, registry: CollectorRegistry | None = None, multiprocess_dir: Path | None = None
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.exposition = self.registry
        if multiprocess_dir is not None:
            self.exposition = CollectorRegistry()
            MultiProcessCollector(self.exposition, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
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
            "sluicegate_active_streams",
            "Streamed responses in progress.",
            registry=r,
            multiprocess_mode="livesum",
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
        self.classifier_calls = Counter(
            "sluicegate_classifier_calls_total",
            "Classifier verdicts, by result (flagged, allowed, or an error label).",
            ["policy", "rule", "result"],
            registry=r,
        )
        self.classifier_seconds = Histogram(
            "sluicegate_classifier_seconds",
            "Time one classifier verdict took (cache hits included).",
            ["policy", "rule"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.classifier_cache_hits = Counter(
            "sluicegate_classifier_cache_hits_total",
            "Verdicts answered from the verdict cache instead of a classifier call.",
            registry=r,
        )
        self.classifier_flags = Counter(
            "sluicegate_classifier_flags_total",
            "Flagged verdicts by category (the rule's listed categories; others as 'other').",
            ["policy", "rule", "category"],
            registry=r,
        )
        self.classifier_leaked = Histogram(
            "sluicegate_classifier_leaked_chars",
            "Characters of a flagged segment the client had received before the cut "
            "(async classifier rules; hold rules leak none).",
            ["policy", "rule"],
            buckets=(0, 1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=r,
        )
        self.rejected_requests = Counter(
            "sluicegate_rejected_requests_total",
            "Requests refused because a client budget was crossed, by budget.",
            ["reason"],
            registry=r,
        )
        self.stream_ends = Counter(
            "sluicegate_stream_ends_total",
            "How moderated streams ended.",
            ["route", "outcome"],
            registry=r,
        )
