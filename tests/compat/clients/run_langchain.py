"""LangChain's ChatOpenAI streams through the gateway: chat, or ``use_responses_api=True``."""

from __future__ import annotations

from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI
from observed import API_KEY, MODEL, PROMPT, Observation, main, responses_finish


def observe(seen: Observation) -> None:
    llm = ChatOpenAI(
        model=MODEL,
        base_url=seen.base_url,
        api_key=API_KEY,
        max_retries=0,
        default_headers=seen.headers,
        use_responses_api=seen.shape == "responses",
    )
    total: AIMessageChunk | None = None
    for chunk in llm.stream(PROMPT):
        seen.chunk(chunk.text)
        total = chunk if total is None else total + chunk
    assert total is not None
    seen.final = total.text
    meta = total.response_metadata
    if seen.shape == "responses":
        seen.finish = responses_finish(meta.get("status"), meta.get("incomplete_details"))
    else:
        seen.finish = meta.get("finish_reason")


if __name__ == "__main__":
    main(observe)
