"""Hypothesis profiles shared by the property tests.

The sluice's invariants (no leak, chunking invariance, minimal hold) are only as good as
the number of texts and splits tried, so the default profile is ``ci``: several hundred
examples per property. ``dev`` is for a quick local loop and ``deep`` for a long hunt
after touching the engine. Pick one with ``HYPOTHESIS_PROFILE=dev|ci|deep``.

Deadlines are off in every profile: a slow CI machine must not turn into a flaky test,
and the scan timeout tests below measure nothing.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)

settings.register_profile("dev", _COMMON, max_examples=60)
settings.register_profile("ci", _COMMON, max_examples=400)
settings.register_profile("deep", _COMMON, max_examples=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
