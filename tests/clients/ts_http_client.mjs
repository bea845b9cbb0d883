// The TypeScript SDK's client over Streamable HTTP or legacy SSE, for interpose's HTTP
// tests. Runs tools/list, an echo call, a sampling call (answered with a text that
// names this client) and a progress call against tests/servers/full_server.py, and
// prints what it saw as one JSON line.
//
// Usage: node ts_http_client.mjs URL NAME [streamable|sse] [TOOL_PREFIX]
// (TOOL_PREFIX: what a gateway puts before the full server's tool names, e.g. `alpha_`.)
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const [url, name, kind = "streamable", prefix = ""] = process.argv.slice(2);
const transport =
  kind === "sse" ? new SSEClientTransport(new URL(url)) : new StreamableHTTPClientTransport(new URL(url));
const client = new Client({ name: `ts-${name}`, version: "0.0.1" }, { capabilities: { sampling: {} } });
client.setRequestHandler(CreateMessageRequestSchema, async () => ({
  role: "assistant",
  content: { type: "text", text: `sampled by ${name}` },
  model: "ts-model",
  stopReason: "endTurn",
}));

const text = (result) => result.content.map((c) => c.text ?? "").join("");
try {
  await client.connect(transport);
  const seen = { version: client.getServerVersion()?.name, progress: [] };
  seen.tools = (await client.listTools()).tools.length;
  seen.echo = text(await client.callTool({ name: `${prefix}echo`, arguments: { text: `hello from ${name}` } }));
  seen.sample = JSON.parse(text(await client.callTool({ name: `${prefix}sample`, arguments: { prompt: "p" } })));
  seen.progressResult = text(
    await client.callTool({ name: `${prefix}progress`, arguments: { steps: 2 } }, undefined, {
      onprogress: (p) => seen.progress.push(p.message),
    }),
  );
  await client.close();
  console.log(JSON.stringify(seen));
} catch (e) {
  console.log(JSON.stringify({ error: String(e) }));
  process.exit(1);
}
