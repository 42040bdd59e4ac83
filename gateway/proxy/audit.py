"""Rule hits as JSON lines, for compliance review: ids and spans, never the text.

Matched text is exactly what must not be copied to yet another place, so the record
carries where the hit was (channel, offsets), not what it was.

Records go through the standard ``logging`` machinery: a ``QueueHandler`` puts each one
on a queue without touching the disk, a ``QueueListener`` thread writes them, and the
``WatchedFileHandler`` behind it reopens the file when logrotate moves it away. So a hit
costs the event loop one queue put, and rotation loses nothing.
"""

from __future__ import annotations

import logging
import queue
import time
from logging.handlers import QueueHandler, QueueListener, WatchedFileHandler
from pathlib import Path

import orjson

from gateway.sluice import Hit


class AuditLog:
    def __init__(self, path: Path | None) -> None:
        self._logger: logging.Logger | None = None
        self._listener: QueueListener | None = None
        if path is None:
            return
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        file = WatchedFileHandler(path, encoding="utf-8")
        file.setFormatter(logging.Formatter("%(message)s"))
        # Not registered with ``logging.getLogger``: each app owns its audit trail, and
        # nothing configured for the root logger ever sees (or re-routes) a record.
        self._logger = logging.Logger("sluicegate.audit", logging.INFO)
        self._logger.propagate = False
        self._logger.addHandler(QueueHandler(records))
        self._listener = QueueListener(records, file)
        self._listener.start()

    def record(self, request_id: str, policy: str, direction: str, channel: str, hit: Hit) -> None:
        if self._logger is None:
            return
        entry = {
            "time": time.time(),
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
        }
        self._logger.info(orjson.dumps(entry).decode())

    def close(self) -> None:
        """Write what is queued, then release the file."""
        if self._listener is not None:
            self._listener.stop()
            for handler in self._listener.handlers:
                handler.close()
            self._listener = None
            self._logger = None
