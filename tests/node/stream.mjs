// Usage: node stream.mjs BASE_URL REPLY_JSON [policy]
// Prints one JSON line: the raw-stream text and finish reasons, plus the helper's final result.
import OpenAI from "openai";

const [baseURL, replyJson] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "test-key", maxRetries: 0 });
const headers = { "X-Demo-Reply": replyJson, "X-Demo-Chunking": "char" };
const request = { model: "demo-chat", messages: [{ role: "user", content: "hi" }] };

const raw = await client.chat.completions.create({ ...request, stream: true }, { headers });
let text = "";
const finishes = [];
for await (const chunk of raw) {
  for (const choice of chunk.choices) {
    text += choice.delta?.content ?? "";
    if (choice.finish_reason) finishes.push(choice.finish_reason);
  }
}
const helper = client.chat.completions.stream(request, { headers });
const final = await helper.finalChatCompletion();
console.log(
  JSON.stringify({
    text,
    finishes,
    final: final.choices[0].message.content,
    finalFinish: final.choices[0].finish_reason,
  }),
);
