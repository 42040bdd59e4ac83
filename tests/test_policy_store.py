"""The policy store sees a ConfigMap update, which swaps a directory link, not a file."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.policy.store import PolicyStore

POLICY = (
    "version: 1\nname: {name}\nrules:\n  - id: w\n    match: {{keywords: [x]}}\n    action: flag\n"
)


def _version(directory: Path, version: str, name: str) -> Path:
    """As the kubelet writes one: a fresh hidden directory, then ``..data`` renamed onto it."""
    (directory / version).mkdir()
    written = directory / version / "policy.yaml"
    written.write_text(POLICY.format(name=name))
    (directory / "..data_tmp").symlink_to(version)
    (directory / "..data_tmp").rename(directory / "..data")
    return written


def test_a_configmap_swap_is_a_change_even_with_equal_size_and_time(tmp_path: Path) -> None:
    first = _version(tmp_path, "..2026_01_01_00_00_00.1", "alpha")
    (tmp_path / "policy.yaml").symlink_to("..data/policy.yaml")
    store = PolicyStore(tmp_path)
    assert list(store.policies) == ["alpha"]
    assert not store.changed()

    second = _version(tmp_path, "..2026_01_01_00_01_00.2", "bravo")
    stat = first.stat()
    os.utime(second, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same time
    assert store.changed()
    store.reload()
    assert list(store.policies) == ["bravo"]  # the hidden directories are not loaded
    assert not store.changed()
