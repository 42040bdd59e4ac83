// The Vercel AI SDK streams through the gateway: streamText with openai.chat(...) or
// openai.responses(...). Same arguments and output as the Python scripts (see observed.py):
// node run_vercel_ai.mjs BASE_URL SHAPE HEADERS_JSON [HEADERS_JSON ...]
import { createOpenAI } from "@ai-sdk/openai";
import { streamText } from "ai";

const [baseURL, shape, ...runs] = process.argv.slice(2);

for (const raw of runs) {
  const start = performance.now();
  const seen = { chunks: [], final: null, finish: null, error: null };
  try {
    const openai = createOpenAI({ baseURL, apiKey: "compat-test-key", headers: JSON.parse(raw) });
    const model = shape === "responses" ? openai.responses("demo-chat") : openai.chat("demo-chat");
    const result = streamText({ model, prompt: "Show me around, please.", maxRetries: 0 });
    for await (const part of result.fullStream) {
      if (part.type === "text-delta" && part.text) {
        seen.chunks.push([Math.round(performance.now() - start) / 1000, part.text]);
      } else if (part.type === "error") {
        throw part.error;
      }
    }
    seen.final = await result.text;
    seen.finish = await result.finishReason;
  } catch (error) {
    seen.error = `${error?.name ?? "Error"}: ${error?.message ?? error}`;
  }
  console.log(JSON.stringify(seen));
}
