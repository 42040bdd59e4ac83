"""The OpenAI Agents SDK streams through the gateway: its chat-completions or Responses model."""

from __future__ import annotations

from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    set_tracing_disabled,
)
from observed import API_KEY, MODEL, PROMPT, Observation, main
from openai import AsyncOpenAI
from openai.types.responses import ResponseTextDeltaEvent


async def observe(seen: Observation) -> None:
    client = AsyncOpenAI(
        base_url=seen.base_url, api_key=API_KEY, max_retries=0, default_headers=seen.headers
    )
    model = (
        OpenAIResponsesModel(MODEL, client)
        if seen.shape == "responses"
        else OpenAIChatCompletionsModel(MODEL, client)
    )
    agent = Agent(name="compat", instructions="Answer the user.", model=model)
    async with client:
        result = Runner.run_streamed(agent, PROMPT)
        async for event in result.stream_events():
            if event.type == "raw_response_event" and isinstance(
                event.data, ResponseTextDeltaEvent
            ):
                seen.chunk(event.data.delta)
    seen.final = str(result.final_output)
    # The SDK's own word on how the answer ended: the status of the message it produced.
    message = result.raw_responses[-1].output[-1]
    seen.finish = getattr(message, "status", None)


if __name__ == "__main__":
    set_tracing_disabled(True)  # traces would go to OpenAI's servers
    main(observe)
