"""LiteLLM as a client library streams through the gateway (``openai/`` model, ``api_base``)."""

from __future__ import annotations

import litellm
from observed import API_KEY, MODEL, PROMPT, Observation, main


def observe(seen: Observation) -> None:
    stream = litellm.completion(
        model=f"openai/{MODEL}",
        api_base=seen.base_url,
        api_key=API_KEY,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        extra_headers=seen.headers,
        num_retries=0,
    )
    text = []
    for chunk in stream:
        for choice in chunk.choices:
            seen.chunk(choice.delta.content)
            text.append(choice.delta.content or "")
            seen.finish = choice.finish_reason or seen.finish
    seen.final = "".join(text)


if __name__ == "__main__":
    main(observe)
