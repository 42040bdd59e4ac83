"""Every metric, declared once.

Labels take bounded values only (route, status class, policy and rule ids from loaded
policies, actions, directions, reasons), never request ids, users or text. Metrics live
in a ``Metrics`` object built on a registry so tests get a fresh ``CollectorRegistry``.

With ``--workers`` above 1 every worker writes its values to files in the directory the
supervisor names in ``PROMETHEUS_MULTIPROC_DIR`` (read by prometheus-client when it is
first imported), and ``exposition`` merges all workers' files, so any worker's
``/metrics`` reports the whole server. A ``Gauge`` therefore needs a ``multiprocess_mode``
(``livesum`` for a count of things in progress); counters and histograms need nothing.

Buckets fit what each histogram holds: per-chunk work in tens of microseconds, holds and
classifier calls in milliseconds to seconds, whole requests up to minutes. No
``*_created`` series are exported (``disable_created_metrics``): they double the series
count and no query of ours reads them. docs/operations.md lists every metric.
"""

from __future__ import annotations

import platform
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.multiprocess import MultiProcessCollector

from gateway import __version__

disable_created_metrics()  # type: ignore[no-untyped-call]  # process-wide, before any metric

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
)  # fmt: skip
_HOLD_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: The gateway's own work on one upstream read: decode, moderate, encode, write.
_CHUNK_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
)  # fmt: skip
_HELD_CHARS_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384)
#: Every result a reload has, exported at 0 from the start: a counter that first
#: appears at 1 shows no ``increase`` in Prometheus, so a first failure would go unseen.
RELOAD_RESULTS = ("success", "failure")


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
        for result in RELOAD_RESULTS:
            self.policy_reloads.labels(result)
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
        self.budget_exceeded = Counter(
            "sluicegate_budget_exceeded_total",
            "Requests a budget stopped (stream_channels, pending_entries, scan_time).",
            ["budget"],
            registry=r,
        )
        self.build_info = Gauge(
            "sluicegate_build_info",
            "Always 1; the labels say which build and Python answer.",
            ["version", "python"],
            registry=r,
            multiprocess_mode="max",
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.upstream_ttfb = Histogram(
            "sluicegate_upstream_time_to_first_byte_seconds",
            "Time from sending a request upstream to the first bytes of its answer "
            "(a stream's first read; a whole body's headers).",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.added_latency = Histogram(
            "sluicegate_added_latency_seconds",
            "Time from an upstream read arriving to the moderated events it released "
            "being written to the client (time text is held is in holdback_seconds).",
            ["route"],
            buckets=_CHUNK_BUCKETS,
            registry=r,
        )
        self.held_chars = Histogram(
            "sluicegate_held_chars",
            "Most characters held back at once during one hold, from its start to release.",
            ["policy"],
            buckets=_HELD_CHARS_BUCKETS,
            registry=r,
        )
        self.stream_cutoffs = Counter(
            "sluicegate_stream_cutoffs_total",
            "Streams cut off, by the rule whose block ended them first.",
            ["policy", "rule"],
            registry=r,
        )
        self.hold_overflows = Counter(
            "sluicegate_hold_limit_overflows_total",
            "Holds that reached max_hold_chars, by what was done (block: cut; flag: released).",
            ["policy", "action"],
            registry=r,
        )
        self.input_blocks = Counter(
            "sluicegate_input_blocks_total",
            "Requests refused by an input rule, by the first rule that blocked.",
            ["policy", "rule"],
            registry=r,
        )
        self.audit_dropped = Counter(
            "sluicegate_audit_dropped_total",
            "Audit records dropped because the writer fell behind (its queue was full).",
            registry=r,
        )
        self.client_disconnects = Counter(
            "sluicegate_client_disconnects_total",
            "Requests whose client went away before the response was complete.",
            ["route"],
            registry=r,
        )
