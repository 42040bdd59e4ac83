"""Performing verdict requests: the I/O half of classifier rules.

The sluice's classifier lane asks (``VerdictRequest``) and is told (``Verdict``); this
module is what tells it. Per process, ``Judges`` builds each policy's classifiers once
and shares one SDK client pool and one verdict cache among them. Per request, a
``Verdicts`` runs the calls concurrently, bounded per stream and in total, counts them,
and cancels what is no longer needed: a client that leaves, or text after a cut, never
keeps a classifier busy.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from gateway.classifiers import (
    Classifier,
    ClassifierError,
    ClassifyInput,
    ClientPool,
    VerdictCache,
    build_classifier,
)
from gateway.classifiers.base import Role
from gateway.metrics import Metrics
from gateway.policy import CompiledPolicy
from gateway.sluice.verdicts import Verdict, VerdictRequest

log = logging.getLogger("sluicegate.classifiers")

#: A verdict that could not be had because the rule's classifier cannot be built.
MISCONFIGURED = Verdict(False, error="misconfigured")
#: Category names that may become label values as they are: OpenAI's moderation
#: categories and Llama Guard's codes. Others count as ``other`` unless a rule lists them.
KNOWN_CATEGORIES = frozenset(
    {
        "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
        "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions",
        "sexual", "sexual/minors", "violence", "violence/graphic",
        *(f"S{n}" for n in range(1, 15)),
    }
)  # fmt: skip
#: Spare time past a rule's own timeout before the gateway gives up on a call itself.
_GRACE_SECONDS = 1.0


class Judges:
    """The classifiers of every loaded policy, built once per policy version."""

    def __init__(
        self,
        metrics: Metrics,
        upstream_url: str,
        upstream_key: str | None,
        *,
        concurrency: int,
        cache_size: int,
    ) -> None:
        self.metrics = metrics
        self.pool = ClientPool()
        self.cache = VerdictCache(cache_size, on_hit=metrics.classifier_cache_hits.inc)
        self.limit = asyncio.Semaphore(concurrency)
        self._upstream_url = upstream_url
        self._upstream_key = upstream_key
        self._built: dict[tuple[str, str, str], Classifier | ClassifierError] = {}

    def classifier(self, policy: CompiledPolicy, rule_id: str) -> Classifier | ClassifierError:
        spec = policy.classifiers[rule_id]
        key = (policy.name, rule_id, spec.model_dump_json())
        found = self._built.get(key)
        if found is None:
            try:
                found = build_classifier(
                    spec,
                    pool=self.pool,
                    upstream_url=self._upstream_url,
                    upstream_key=self._upstream_key,
                    cache=self.cache,
                )
            except ClassifierError as exc:
                log.error("classifier rule %s of policy %s: %s", rule_id, policy.name, exc)
                found = exc
            self._built[key] = found
        return found

    def check(self, policies: Iterable[CompiledPolicy]) -> list[str]:
        """Build every classifier now, so a broken one is reported at start, not later."""
        return [
            f"{policy.name}: {rule_id}: {found}"
            for policy in policies
            for rule_id in policy.classifiers
            if isinstance(found := self.classifier(policy, rule_id), ClassifierError)
        ]

    async def close(self) -> None:
        await self.pool.close()


class Verdicts:
    """One request's verdict calls: started as asked, results taken as they finish."""

    def __init__(
        self,
        judges: Judges,
        policy: CompiledPolicy,
        *,
        prompt: str,
        api_key: str | None,
        role: Role,
        per_stream: int,
    ) -> None:
        self._judges = judges
        self._policy = policy
        self._prompt = prompt
        self._api_key = api_key
        self._role = role
        self._limit = asyncio.Semaphore(per_stream)
        self.tasks: dict[asyncio.Task[Verdict], int] = {}

    def start(self, requests: Iterable[VerdictRequest]) -> None:
        for request in requests:
            task = asyncio.ensure_future(self._call(request))
            self.tasks[task] = request.id

    def cancel(self, ids: Iterable[int]) -> None:
        dropped = set(ids)
        if not dropped:
            return
        for task, request_id in list(self.tasks.items()):
            if request_id in dropped:
                task.cancel()
                del self.tasks[task]

    def take(self, task: asyncio.Task[Verdict]) -> tuple[int, Verdict]:
        """The finished ``task``'s request id and verdict."""
        return self.tasks.pop(task), task.result()

    async def all(self, requests: Iterable[VerdictRequest]) -> list[tuple[int, Verdict]]:
        """Every verdict of ``requests`` (a non-streamed body is judged whole)."""
        self.start(requests)
        try:
            await asyncio.gather(*self.tasks)
            return [self.take(task) for task in list(self.tasks)]
        finally:
            self.close()

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()

    async def _call(self, request: VerdictRequest) -> Verdict:
        judges, policy = self._judges, self._policy
        found = judges.classifier(policy, request.rule_id)
        metrics = judges.metrics
        labels = (policy.name, request.rule_id)
        if isinstance(found, ClassifierError):
            metrics.classifier_calls.labels(*labels, MISCONFIGURED.error).inc()
            return MISCONFIGURED
        spec = policy.classifiers[request.rule_id]
        timeout = spec.timeout_seconds + _GRACE_SECONDS
        item = ClassifyInput(request.text, request.context, self._prompt, self._api_key, self._role)
        async with self._limit, judges.limit:
            started = time.monotonic()
            try:
                async with asyncio.timeout(timeout):
                    verdict = await found.classify(item)
            except TimeoutError:
                verdict = Verdict(False, error="timeout")
            metrics.classifier_seconds.labels(*labels).observe(time.monotonic() - started)
        result = verdict.error or ("flagged" if verdict.flagged else "allowed")
        metrics.classifier_calls.labels(*labels, result).inc()
        if verdict.flagged:
            listed = spec.categories
            for category in verdict.categories or ("any",):
                # Only names the author wrote become label values: a model's free text
                # (a judge's categories) must not grow the label set without bound.
                known = category in KNOWN_CATEGORIES or (listed is not None and category in listed)
                label = category if known or category == "any" else "other"
                metrics.classifier_flags.labels(*labels, label).inc()
        return verdict
