// Usage: node responses.mjs BASE_URL REPLY_JSON
// Prints one JSON line: the event types seen and what finalResponse() resolved with.
import OpenAI from "openai";

const [baseURL, replyJson] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "test-key", maxRetries: 0 });
const headers = { "X-Demo-Reply": replyJson, "X-Demo-Chunking": "char" };

const stream = client.responses.stream({ model: "demo-chat", input: "hi" }, { headers });
let deltas = "";
const types = [];
for await (const event of stream) {
  types.push(event.type);
  if (event.type === "response.output_text.delta") deltas += event.delta;
}
const final = await stream.finalResponse();
console.log(
  JSON.stringify({
    deltas,
    last: types[types.length - 1],
    status: final.status,
    reason: final.incomplete_details?.reason ?? null,
    outputText: final.output_text,
  }),
);
