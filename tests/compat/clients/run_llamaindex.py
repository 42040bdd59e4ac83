"""LlamaIndex streams through the gateway with ``stream_chat``.

``OpenAILike``, not ``OpenAI``: the latter refuses a model name it does not know
(``demo-chat``), as it would any self-hosted model behind the gateway.
"""

from __future__ import annotations

from llama_index.core.llms import ChatMessage
from llama_index.llms.openai_like import OpenAILike
from observed import API_KEY, MODEL, PROMPT, Observation, main


def observe(seen: Observation) -> None:
    llm = OpenAILike(
        model=MODEL,
        api_base=seen.base_url,
        api_key=API_KEY,
        max_retries=0,
        default_headers=seen.headers,
        is_chat_model=True,
    )
    last = None
    for last in llm.stream_chat([ChatMessage(role="user", content=PROMPT)]):
        seen.chunk(last.delta)
    assert last is not None
    seen.final = last.message.content
    # ChatResponse has no field for how the answer ended; ``finish`` stays None.


if __name__ == "__main__":
    main(observe)
