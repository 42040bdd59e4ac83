"""The set of active policies, reloaded live while keeping the last good set.

A reload either replaces every policy at once or changes nothing: one broken file in
a directory must not unload the others, and a half-edited file must never be active.
Change detection is by file stat, so it works on any filesystem, ConfigMap symlink
swaps included (the stat follows the link; the inode tells a swapped-in file from the
old one even when size and timestamp match); the proxy polls it (no I/O loop lives here).
"""

from __future__ import annotations

from pathlib import Path

from gateway.policy.compiler import CompiledPolicy
from gateway.policy.errors import PolicyError, Problem
from gateway.policy.loader import load_paths, policy_files

Signature = tuple[tuple[str, int, int, int], ...]


class PolicyStore:
    def __init__(self, path: Path, default_name: str | None = None) -> None:
        self.path = path
        self._wanted_default = default_name
        self.policies: dict[str, CompiledPolicy] = {}
        self.default = ""
        self._signature: Signature = ()
        self.reload()

    def get(self, name: str | None) -> CompiledPolicy | None:
        return self.policies.get(self.default if name is None else name)

    def signature(self) -> Signature:
        out = []
        for file in policy_files(self.path):
            try:
                stat = file.stat()
            except OSError:
                continue
            out.append((str(file), stat.st_ino, stat.st_mtime_ns, stat.st_size))
        return tuple(out)

    def changed(self) -> bool:
        return self.signature() != self._signature

    def reload(self) -> None:
        """Load everything again; on any problem raise and keep what was active."""
        signature = self.signature()
        loaded = load_paths([self.path])
        default = self._wanted_default or next(iter(loaded))
        if default not in loaded:
            known = ", ".join(loaded)
            message = f"default policy {default!r} is not loaded (loaded: {known})"
            raise PolicyError([Problem(str(self.path), 1, 1, message)])
        self.policies, self.default, self._signature = loaded, default, signature

    def mark_seen(self) -> None:
        """After a failed reload: do not retry until the files change again."""
        self._signature = self.signature()
