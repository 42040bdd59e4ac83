"""Rule hits as JSON lines, for compliance review: ids, spans and, if keyed, a hash.

Matched text is exactly what must not be copied to yet another place, so by default a
record carries where the hit was (channel, offsets, length), not what it was. Two
settings add to that: a key (``SLUICEGATE_AUDIT_HASH_KEY``) adds an HMAC-SHA256 of the
matched text, so a reviewer holding the key can tell whether two hits matched the same
secret, or whether a given value was ever matched, without the log holding it; and
``SLUICEGATE_AUDIT_TEXT=true`` adds the text itself, for operators whose review needs it.
Hits of classifier rules carry neither: the classifier judged a whole segment, whose
text the stream no longer holds once the verdict comes back.

Records go through the standard ``logging`` machinery: a ``QueueHandler`` puts each one
on a bounded queue without touching the disk, a ``QueueListener`` thread writes them,
and the ``WatchedFileHandler`` behind it reopens the file when logrotate moves it away.
So a hit costs the event loop one queue put, and rotation loses nothing. A full queue
(the disk stalled for thousands of hits) drops the record and counts it in
``sluicegate_audit_dropped_total``: waiting for the disk would stall every stream.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import sys
import time
from collections.abc import Callable
from logging.handlers import QueueHandler, QueueListener, WatchedFileHandler
from pathlib import Path
from typing import Literal

import orjson

from gateway.logs import utc_time
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.sluice import Hit

AuditTarget = Path | Literal["-", "stdout"]
STDOUT_TARGETS = ("-", "stdout")
CAPACITY = 10_000
"""Records that may wait for the writer thread before new ones are dropped."""
LOGGER = "sluicegate.audit"


def audit_handler(target: AuditTarget) -> logging.Handler:
    """Where records land: a file that survives rotation, or stdout for a container."""
    if isinstance(target, str):  # one of STDOUT_TARGETS (the setting's type allows no other)
        return logging.StreamHandler(sys.stdout)
    return WatchedFileHandler(target, encoding="utf-8")


class _DroppingQueueHandler(QueueHandler):
    """``QueueHandler`` that counts a record the full queue refuses, instead of printing
    logging's "--- Logging error ---" traceback for each one."""

    def __init__(self, records: queue.Queue[logging.LogRecord], dropped: Callable[[], None]):
        super().__init__(records)
        self._dropped = dropped

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self._dropped()


class _Listener(QueueListener):
    def enqueue_sentinel(self) -> None:
        """At shutdown the queue may be full: wait for room (the writer is draining it)."""
        self.queue.put(self._sentinel)  # type: ignore[attr-defined]


def open_audit_log(settings: Settings, metrics: Metrics) -> AuditLog:
    """The audit log as the settings ask for it (none without ``audit_log``)."""
    target, key = settings.audit_log, settings.audit_hash_key
    return AuditLog(
        audit_handler(target) if target is not None else None,
        hash_key=key.get_secret_value().encode() if key is not None else None,
        include_text=settings.audit_text,
        dropped=metrics.audit_dropped.inc,
    )


class AuditLog:
    def __init__(
        self,
        handler: logging.Handler | None,
        *,
        hash_key: bytes | None = None,
        include_text: bool = False,
        dropped: Callable[[], None] = lambda: None,
        capacity: int = CAPACITY,
    ) -> None:
        self._hash_key = hash_key
        self._include_text = include_text
        self._logger: logging.Logger | None = None
        self._listener: QueueListener | None = None
        if handler is None:
            return
        records: queue.Queue[logging.LogRecord] = queue.Queue(capacity)
        handler.setFormatter(logging.Formatter("%(message)s"))
        # Not registered with ``logging.getLogger``: each app owns its audit trail, and
        # nothing configured for the root logger ever sees (or re-routes) a record.
        self._logger = logging.Logger(LOGGER, logging.INFO)
        self._logger.propagate = False
        self._logger.addHandler(_DroppingQueueHandler(records, dropped))
        self._listener = _Listener(records, handler)
        self._listener.start()

    def record(self, request_id: str, policy: str, direction: str, channel: str, hit: Hit) -> None:
        if self._logger is None:
            return
        entry: dict[str, object] = {
            "time": utc_time(time.time()),
            "logger": LOGGER,
            "request_id": request_id,
            "policy": policy,
            "direction": direction,
            "channel": channel,
            "rule": hit.rule_id,
            "action": hit.action.label,
            "intended": (hit.intended or hit.action).label,
            "reason": hit.reason.value,
            "start": hit.start,
            "end": hit.end,
            "length": hit.end - hit.start,
        }
        if hit.matched and self._hash_key is not None:
            digest = hmac.new(self._hash_key, hit.matched.encode(), hashlib.sha256)
            entry["hmac_sha256"] = digest.hexdigest()
        if hit.matched and self._include_text:
            entry["text"] = hit.matched
        self._logger.info(orjson.dumps(entry).decode())

    def close(self) -> None:
        """Write what is queued, then release the file."""
        if self._listener is not None:
            self._listener.stop()
            for handler in self._listener.handlers:
                handler.close()  # closes a file; stdout stays open
            self._listener = None
            self._logger = None
