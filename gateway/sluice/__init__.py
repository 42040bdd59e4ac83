"""The pure streaming validator: text deltas in, released text and hits out.

No I/O, no asyncio and no OpenAI shapes live here, which is what lets property tests
prove the no-leak and chunking-invariance invariants over many random splits quickly.
"""

from gateway.sluice.engine import CONTEXT_CHARS, Sluice, SluiceConfig
from gateway.sluice.matcher import Matcher, compile_rule
from gateway.sluice.types import (
    ERROR_RULE,
    HOLD_LIMIT_RULE,
    Action,
    Hit,
    Piece,
    Reason,
    Rule,
    Step,
)

__all__ = [
    "CONTEXT_CHARS",
    "ERROR_RULE",
    "HOLD_LIMIT_RULE",
    "Action",
    "Hit",
    "Matcher",
    "Piece",
    "Reason",
    "Rule",
    "Sluice",
    "SluiceConfig",
    "Step",
    "compile_rule",
    "moderate",
]


def moderate(config: SluiceConfig, text: str) -> Step:
    """Moderate a complete text at once: the reference every stream must equal."""
    sluice = config.open()
    first = sluice.feed(text)
    last = sluice.finish()
    return Step(
        pieces=first.pieces + last.pieces,
        hits=first.hits + last.hits,
        cut=first.cut or last.cut,
        notice=first.notice or last.notice,
    )
