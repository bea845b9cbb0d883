// Helpers for common MCP payloads: tool results, content blocks, resource
// contents and prompt messages. They work on plain parsed JSON, so fields this
// SDK does not know (newer protocol revisions, `_meta`) are kept as they are.

/** A text content block. */
export function text(value) {
  return { type: "text", text: String(value) };
}

/**
 * A `tools/call` result. `content` is a string (one text block) or a list of
 * content blocks.
 */
export function toolResult(content, options = {}) {
  const result = { content: typeof content === "string" ? [text(content)] : content };
  if (options.structuredContent !== undefined) {
    result.structuredContent = options.structuredContent;
  }
  if (options.isError) {
    result.isError = true;
  }
  return result;
}

/** A `tools/call` result that reports a tool error to the model (`isError: true`). */
export function toolError(message) {
  return toolResult(String(message), { isError: true });
}

/** The text of a content block, of an embedded text resource, or `undefined`. */
export function textOf(block) {
  if (block === null || typeof block !== "object") {
    return undefined;
  }
  if (typeof block.text === "string") {
    return block.text;
  }
  const resource = block.resource;
  return resource !== null && typeof resource === "object" && typeof resource.text === "string" ? resource.text : undefined;
}

/**
 * The texts of a payload holding content: a tool result (`content`), a
 * `resources/read` result (`contents`) or a `prompts/get` result (`messages`).
 */
export function textsOf(payload) {
  const out = [];
  for (const block of blocksOf(payload)) {
    const value = textOf(block);
    if (value !== undefined) {
      out.push(value);
    }
  }
  return out;
}

/**
 * Calls `edit(text)` on each text of a tool result, resource contents or prompt
 * messages (see `textsOf`); a string returned replaces the text. Returns
 * whether anything changed. Edits the payload in place.
 */
export function editTexts(payload, edit) {
  let changed = false;
  for (const block of blocksOf(payload)) {
    if (block === null || typeof block !== "object") {
      continue;
    }
    const holder = typeof block.text === "string" ? block : block.resource;
    if (holder === null || typeof holder !== "object" || typeof holder.text !== "string") {
      continue;
    }
    const replaced = edit(holder.text);
    if (typeof replaced === "string" && replaced !== holder.text) {
      holder.text = replaced;
      changed = true;
    }
  }
  return changed;
}

function* blocksOf(payload) {
  if (payload === null || typeof payload !== "object") {
    return;
  }
  if (Array.isArray(payload.content)) {
    yield* payload.content;
  }
  if (Array.isArray(payload.contents)) {
    yield* payload.contents;
  }
  if (Array.isArray(payload.messages)) {
    for (const message of payload.messages) {
      if (message !== null && typeof message === "object") {
        yield message.content;
      }
    }
  }
}

/**
 * Canonical JSON: object keys sorted, no whitespace. Two values that are equal
 * as JSON give the same text (useful as a cache key).
 */
export function canonicalJson(value) {
  if (value === null || typeof value !== "object") {
    const out = JSON.stringify(value);
    return out === undefined ? "null" : out;
  }
  if (Array.isArray(value)) {
    return `[${value.map(canonicalJson).join(",")}]`;
  }
  const keys = Object.keys(value).sort();
  const parts = [];
  for (const key of keys) {
    if (value[key] !== undefined) {
      parts.push(`${JSON.stringify(key)}:${canonicalJson(value[key])}`);
    }
  }
  return `{${parts.join(",")}}`;
}
