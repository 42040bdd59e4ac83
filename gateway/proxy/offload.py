"""Moderating a big body off the event loop, so one request cannot stall all the others.

Moderating a body costs about as much as the text in it (a 10 MB prompt takes seconds of
pattern scanning), and on the event loop nothing else runs meanwhile: ``/healthz``, every
stream. So a body of ``offload_bytes`` or more is parsed, moderated and serialised on a
small thread pool instead (docs/performance.md, "Big bodies").

Threads, not processes, because that is what measured well: the scans are many short
``regex`` calls, so the loop gets the GIL back within milliseconds (CPython hands it over
every 5 ms), and a thread needs no copy of the body or the compiled policy. Smaller
bodies stay on the loop, where they cost no hand-over. The pool is small
(``offload_threads``): more threads would not scan faster under one GIL, only take the
GIL from the loop more often; big bodies past it queue for a thread.

The work runs in a copy of the request's context, so its scan-time budget
(``sluice.budget``) reaches every search the thread makes and is charged as on the loop.
A request whose client leaves stops waiting at once; its thread finishes (within the
request's scan-time budget) and the result is dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Offload:
    """Runs moderation of bodies of ``threshold`` bytes or more on ``threads`` threads."""

    def __init__(self, threads: int, threshold: int) -> None:
        self.threshold = threshold
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="sluicegate-offload")

    async def run(self, size: int, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``work(*args, **kwargs)``: on the loop for a body of ``size`` bytes below the
        threshold, else on the pool."""
        if size < self.threshold:
            return work(*args, **kwargs)
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: context.run(work, *args, **kwargs))

    def close(self) -> None:
        """Stop the pool; queued work is dropped (its requests are gone with the app)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
