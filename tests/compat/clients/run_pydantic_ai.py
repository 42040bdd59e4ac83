"""pydantic-ai streams through the gateway: OpenAIChatModel or OpenAIResponsesModel."""

from __future__ import annotations

from observed import API_KEY, MODEL, PROMPT, Observation, main
from openai import AsyncOpenAI
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider


async def observe(seen: Observation) -> None:
    client = AsyncOpenAI(
        base_url=seen.base_url, api_key=API_KEY, max_retries=0, default_headers=seen.headers
    )
    provider = OpenAIProvider(openai_client=client)
    model = (
        OpenAIResponsesModel(MODEL, provider=provider)
        if seen.shape == "responses"
        else OpenAIChatModel(MODEL, provider=provider)
    )
    async with client, Agent(model).run_stream(PROMPT) as result:
        async for delta in result.stream_text(delta=True):
            seen.chunk(delta)
        seen.final = await result.get_output()
        seen.finish = result.response.finish_reason


if __name__ == "__main__":
    main(observe)
