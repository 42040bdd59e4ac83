"""What the pure adapter tests share: one small rule set and its names."""

from __future__ import annotations

import dataclasses

from gateway.sluice import Action, Matcher, Rule, SluiceConfig

CFG = SluiceConfig(
    enforce=Matcher(
        [
            Rule("secret", r"sk-[A-Za-z0-9]{8,}", Action.REDACT, "[REDACTED]"),
            Rule("ban", r"nightingale", Action.BLOCK),
        ],
        0.1,
    ),
    observe=Matcher([], 0.1),
)
NOTICE = dataclasses.replace(CFG, cutoff_notice=" [cut off]")
SECRET = "sk-AB12CD34EF"
