"""What ``/metrics`` exports, checked on the exposition text itself.

The series an operator's queries and alerts rely on: no ``*_created`` duplicates, a
build info gauge, reload results present before the first reload, buckets that cover
what each histogram measures, and label names that can only take bounded values.
"""

from __future__ import annotations

import platform

from prometheus_client import generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from gateway import __version__
from gateway.metrics import Metrics

#: Every label name in use; each takes values from a fixed set or the loaded policies.
BOUNDED_LABELS = {
    "route", "status", "policy", "rule", "action", "direction", "reason", "result",
    "category", "outcome", "budget", "version", "python",
}  # fmt: skip


def _collectors(metrics: Metrics) -> list[MetricWrapperBase]:
    return [v for v in vars(metrics).values() if isinstance(v, MetricWrapperBase)]


def _touch_every_metric(metrics: Metrics) -> None:
    """One value in every metric, so each family exports its samples."""
    for collector in _collectors(metrics):
        names = collector._labelnames
        child = collector.labels(*("x" for _ in names)) if names else collector
        for method in ("inc", "observe"):
            if hasattr(child, method):
                getattr(child, method)(1)
                break


def test_no_created_series_are_exported() -> None:
    metrics = Metrics()
    _touch_every_metric(metrics)
    text = generate_latest(metrics.exposition).decode()
    assert "sluicegate_requests_total" in text
    assert "_created" not in text


def test_build_info_names_the_version_and_python() -> None:
    families = {
        f.name: f
        for f in text_string_to_metric_families(generate_latest(Metrics().registry).decode())
    }
    (sample,) = families["sluicegate_build_info"].samples
    assert sample.labels == {"version": __version__, "python": platform.python_version()}
    assert sample.value == 1


def test_reload_results_are_exported_before_any_reload() -> None:
    """A failure series that first appears at 1 has no ``increase()`` in Prometheus."""
    text = generate_latest(Metrics().registry).decode()
    for result in ("success", "failure"):
        assert f'sluicegate_policy_reloads_total{{result="{result}"}} 0.0' in text


def test_histogram_buckets_cover_what_they_measure() -> None:
    metrics = Metrics()
    expected = {  # (largest lower bound, smallest upper bound) the buckets must span
        "sluicegate_added_latency_seconds": (0.0001, 0.1),
        "sluicegate_time_to_first_token_seconds": (0.001, 60),
        "sluicegate_upstream_time_to_first_byte_seconds": (0.001, 60),
        "sluicegate_request_duration_seconds": (0.001, 60),
        "sluicegate_holdback_seconds": (0.001, 10),
        "sluicegate_classifier_seconds": (0.001, 30),
        "sluicegate_held_chars": (1, 4096),
    }
    for collector in _collectors(metrics):
        if collector._name in expected:
            low, high = expected.pop(collector._name)
            bounds = [b for b in collector._upper_bounds if b != float("inf")]  # type: ignore[attr-defined]
            assert bounds == sorted(bounds)
            assert bounds[0] <= low and bounds[-1] >= high, (collector._name, bounds)
    assert not expected, f"not declared: {sorted(expected)}"


def test_every_label_takes_bounded_values() -> None:
    for collector in _collectors(Metrics()):
        names = set(collector._labelnames)
        assert names <= BOUNDED_LABELS, (collector._name, names - BOUNDED_LABELS)
