"""Fake but self-consistent token statistics: logprobs and usage counts.

Logprobs repeat the answer's text (``token``, ``bytes``, the alternatives in
``top_logprobs``), which is exactly where a moderating proxy can leak what it redacted
(docs/wire.md, "Logprobs"). So each delta gets one token equal to the delta's text, the tokens of a
choice concatenate to its content, ``bytes`` are the token's UTF-8, and the alternatives
extend the token so they contain its text too. Values are derived from the text alone, so
the streamed and the non-streamed answer carry the same numbers.
"""

from __future__ import annotations

import zlib
from typing import Any

from gateway.demo.chunking import split_words

MAX_TOP_LOGPROBS = 20

# Alternatives are the token plus a suffix: distinct from it and from each other.
_SUFFIXES = (
    "s", "ed", "ing", "er", "ly", "est", "ness", "ful", "less", "able",
    "ment", "ion", "ist", "ism", "ity", "ous", "ive", "al", "ize",
)  # fmt: skip


def logprob(token: str, rank: int = 0) -> float:
    """A deterministic log-probability in (-1, 0] for rank 0, lower for each later rank."""
    return -(zlib.crc32(token.encode()) % 1000) / 1000 - 0.75 * rank


def top_tokens(token: str, count: int) -> list[str]:
    """The ``count`` most likely tokens at this position, the chosen one first."""
    return [token, *(token + suffix for suffix in _SUFFIXES)][:count]


def chat_logprob(token: str, top: int) -> dict[str, Any]:
    """A Chat Completions ``logprobs.content[]`` entry (Responses part logprobs match it)."""
    return {
        "token": token,
        "logprob": logprob(token),
        "bytes": list(token.encode()),
        "top_logprobs": [
            {"token": alt, "logprob": logprob(token, rank), "bytes": list(alt.encode())}
            for rank, alt in enumerate(top_tokens(token, top))
        ],
    }


def delta_logprob(token: str, top: int) -> dict[str, Any]:
    """A Responses ``output_text.delta`` logprob: like the chat one, without ``bytes``."""
    return {
        "token": token,
        "logprob": logprob(token),
        "top_logprobs": [
            {"token": alt, "logprob": logprob(token, rank)}
            for rank, alt in enumerate(top_tokens(token, top))
        ],
    }


def legacy_logprobs(tokens: list[str], offset: int, top: int) -> dict[str, Any]:
    """Legacy Completions column-wise logprobs; ``text_offset`` counts from ``offset``."""
    offsets: list[int] = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [logprob(token) for token in tokens],
        "top_logprobs": [
            {alt: logprob(token, rank) for rank, alt in enumerate(top_tokens(token, top))}
            for token in tokens
        ],
        "text_offset": offsets,
    }


def count_tokens(text: str) -> int:
    """Usage counts words, whatever the chunking, so every split reports the same usage."""
    return len(split_words(text))


def chat_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """``usage`` for Chat Completions and legacy Completions."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def responses_usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """``usage`` for the Responses API, with its own field names."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }
