"""The demo classifiers' whole judgement: a few words per category, each with a score.

Real classifiers are models; the demo's must be deterministic and obvious, so a test or a
new user can predict every verdict from the text alone. A word scores its category when
it appears as a word (any case; an ``s``, ``es``, ``ed``, ``ing`` or ``er`` ending is
allowed: "attacked", "bombs"). Strong words score 0.9 and flag; mild words score 0.4,
under the 0.5 every demo endpoint flags at, so they show what a threshold does
(``categories: {violence: 0.3}`` flags "fight") and what Qwen3Guard's ``Controversial``
is. Everything else scores 0.01.

============  =============================================  =====================
category      strong (0.9)                                   mild (0.4)
============  =============================================  =====================
violence      kill, attack, bomb, shoot, stab, murder         fight, punch
self-harm     suicide, self-harm, overdose, hurt myself       hopeless
harassment    idiot, moron, loser, worthless                  stupid, dumb
============  =============================================  =====================

How each demo model names them: Llama Guard S1 / S11 / S10; ShieldGemma "Dangerous
Content" (violence, self-harm) and "Harassment"; Granite Guardian ``harm`` (all),
``violence``, ``profanity`` (harassment: insults); Qwen3Guard "Violent", "Suicide &
Self-Harm", "Unethical Acts"; the moderation endpoint and the judge by the names above.
"""

from __future__ import annotations

import re

VIOLENCE = "violence"
SELF_HARM = "self-harm"
HARASSMENT = "harassment"

STRONG = 0.9
MILD = 0.4
BASELINE = 0.01
FLAG_AT = 0.5

LEXICON: dict[str, dict[str, float]] = {
    VIOLENCE: {
        "kill": STRONG,
        "attack": STRONG,
        "bomb": STRONG,
        "shoot": STRONG,
        "stab": STRONG,
        "murder": STRONG,
        "fight": MILD,
        "punch": MILD,
    },
    SELF_HARM: {
        "suicide": STRONG,
        "self-harm": STRONG,
        "overdose": STRONG,
        "hurt myself": STRONG,
        "hopeless": MILD,
    },
    HARASSMENT: {
        "idiot": STRONG,
        "moron": STRONG,
        "loser": STRONG,
        "worthless": STRONG,
        "stupid": MILD,
        "dumb": MILD,
    },
}

_PATTERNS = {
    category: [
        (re.compile(rf"\b{re.escape(word)}(?:s|es|ed|ing|er)?\b", re.IGNORECASE), score)
        for word, score in words.items()
    ]
    for category, words in LEXICON.items()
}

LLAMA_GUARD = {VIOLENCE: "S1", SELF_HARM: "S11", HARASSMENT: "S10"}
QWEN3GUARD = {VIOLENCE: "Violent", SELF_HARM: "Suicide & Self-Harm", HARASSMENT: "Unethical Acts"}
SHIELDGEMMA = {
    VIOLENCE: "Dangerous Content",
    SELF_HARM: "Dangerous Content",
    HARASSMENT: "Harassment",
}
SHIELDGEMMA_POLICIES = ("Dangerous Content", "Harassment", "Hate Speech", "Sexually Explicit")
GRANITE_RISKS = {
    VIOLENCE: ("harm", "violence"),
    SELF_HARM: ("harm",),
    HARASSMENT: ("harm", "profanity"),
}


def scores(text: str) -> dict[str, float]:
    """Each category's score for ``text``: its highest matching word's, else the baseline."""
    return {
        category: max(
            (score for pattern, score in patterns if pattern.search(text)), default=BASELINE
        )
        for category, patterns in _PATTERNS.items()
    }


def flagged(text: str) -> list[str]:
    """The categories ``text`` is flagged for (score at or over ``FLAG_AT``), in table order."""
    return [category for category, score in scores(text).items() if score >= FLAG_AT]


def mild(text: str) -> list[str]:
    """The categories with only a mild word: borderline, not flagged."""
    return [category for category, score in scores(text).items() if BASELINE < score < FLAG_AT]
