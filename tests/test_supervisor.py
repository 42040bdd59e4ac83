"""How many workers ``--workers auto`` starts: the usable CPUs, capped by a container's limit.

The processes themselves are tested in ``tests/e2e/test_workers.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.proxy.supervisor import cgroup_cpu_limit, worker_count

USABLE = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cpu_max", "limit"),
    [
        ("max 100000\n", None),
        ("200000 100000\n", 2),
        ("150000 100000\n", 2),  # 1.5 CPUs: a second worker still has half a CPU
        ("50000 100000\n", 1),
        ("garbage\n", None),
        ("100000 0\n", None),
    ],
)
def test_cgroup_cpu_limit(tmp_path: Path, cpu_max: str, limit: int | None) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert cgroup_cpu_limit(tmp_path / "cpu.max") == limit


def test_no_cgroup_file_means_no_limit(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path / "missing") is None


def test_auto_is_the_usable_cpus_capped_by_the_limit(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert worker_count("auto", cpu_max) == USABLE
    cpu_max.write_text("100000 100000\n")
    assert worker_count("auto", cpu_max) == 1
    cpu_max.write_text(f"{(USABLE + 8) * 100000} 100000\n")
    assert worker_count("auto", cpu_max) == USABLE


def test_a_number_is_taken_as_it_is(tmp_path: Path) -> None:
    assert worker_count(3, tmp_path / "missing") == 3
