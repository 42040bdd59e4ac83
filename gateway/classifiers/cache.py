"""A bounded LRU of verdicts, so a repeated sentence costs one classifier call, not many.

Streams repeat themselves (boilerplate, retries of the same request, ``n > 1`` choices),
and a verdict is a pure function of the classifier and what it was shown. Keys are
digests: the cache never holds the text it judged (a prompt may be 100 kB and private),
so its memory is bounded by ``size`` alone. Errors are never stored: a timeout says
nothing about the text, and the next call may well succeed.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

from gateway.classifiers.base import Classifier, ClassifyInput
from gateway.sluice.verdicts import Verdict

DEFAULT_SIZE = 4096


class VerdictCache:
    """Least recently used verdicts, at most ``size`` of them (0 disables caching)."""

    def __init__(self, size: int = DEFAULT_SIZE, on_hit: Callable[[], None] | None = None) -> None:
        if size < 0:
            raise ValueError("cache size must be >= 0")
        self._size = size
        self._on_hit = on_hit  # e.g. a metric: the counts below are per process
        self._items: OrderedDict[bytes, Verdict] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: bytes) -> Verdict | None:
        verdict = self._items.get(key)
        if verdict is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        if self._on_hit is not None:
            self._on_hit()
        return verdict

    def put(self, key: bytes, verdict: Verdict) -> None:
        if verdict.failed or self._size == 0:
            return
        self._items[key] = verdict
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


def cache_key(identity: str, *parts: str) -> bytes:
    """A digest of the classifier's identity and what it is shown; lengths keep it unambiguous."""
    digest = hashlib.blake2b(digest_size=20)
    for part in (identity, *parts):
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.digest()


class CachedClassifier:
    """``inner`` behind ``cache``; only what ``inner`` reads is part of the key.

    A moderation endpoint never sees the prompt and a local model sees only the segment,
    so leaving those out of the key lets the same sentence hit whatever was asked before.
    """

    def __init__(
        self,
        inner: Classifier,
        cache: VerdictCache,
        identity: str,
        *,
        reads_context: bool = True,
        reads_prompt: bool = True,
    ) -> None:
        self._inner = inner
        self._cache = cache
        self._identity = identity
        self._reads_context = reads_context
        self._reads_prompt = reads_prompt

    async def classify(self, item: ClassifyInput) -> Verdict:
        key = cache_key(
            self._identity,
            item.role,
            item.context if self._reads_context else "",
            item.text,
            item.prompt if self._reads_prompt else "",
        )
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        verdict = await self._inner.classify(item)
        self._cache.put(key, verdict)
        return verdict
