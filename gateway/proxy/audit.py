"""Rule hits as JSON lines, for compliance review: ids and spans, never the text.

Matched text is exactly what must not be copied to yet another place, so the record
carries where the hit was (channel, offsets), not what it was.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import IO

import orjson

from gateway.sluice import Hit

log = logging.getLogger("sluicegate.audit")


class AuditLog:
    def __init__(self, path: Path | None) -> None:
        self._file: IO[bytes] | None = path.open("ab") if path is not None else None

    def record(self, request_id: str, policy: str, direction: str, channel: str, hit: Hit) -> None:
        if self._file is None:
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
        self._file.write(orjson.dumps(entry) + b"\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
