// Streams one chat completion with tools through the Node openai SDK and prints, as
// one JSON line, what a Node client assembles from the chunks: each tool call (id,
// name, arguments joined from their fragments, counted), the text, the finish reasons and
// whether usage came. Arguments: BASE_URL, then the request body as JSON (without
// `stream`). Node finds the `openai` package through NODE_PATH.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { default: OpenAI } = require("openai");

const [baseURL, bodyJson] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0, timeout: 60_000 });
const stream = await client.chat.completions.create({
  ...JSON.parse(bodyJson),
  stream: true,
  stream_options: { include_usage: true },
});

const calls = [];
const finishReasons = [];
let text = "";
let usage = null;
let heads = 0;
let fragments = 0;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const choice of chunk.choices) {
    if (choice.finish_reason) finishReasons.push(choice.finish_reason);
    text += choice.delta.content ?? "";
    for (const piece of choice.delta.tool_calls ?? []) {
      if (piece.id) {
        heads += 1;
        calls[piece.index] = { id: piece.id, type: piece.type, name: piece.function?.name, arguments: "" };
      }
      if (piece.function?.arguments) fragments += 1;
      calls[piece.index].arguments += piece.function?.arguments ?? "";
    }
  }
}
console.log(JSON.stringify({ calls, heads, fragments, text, finishReasons, usage }));
