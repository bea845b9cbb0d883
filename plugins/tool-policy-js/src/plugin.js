// interpose plugin: decides which tools a client may see and call, under which
// names, and with which arguments. The JavaScript twin of plugins/tool-policy
// (same config, same results, same errors). See the README for the
// configuration.

import { createPlugin, ErrorCode, reject, rewrite } from "interpose-plugin";

import { parseConfig, Policy } from "./policy.js";
import {
  Arr,
  compareKeys,
  flattenedStruct,
  invalidTypeIndex,
  mapEntries,
  mapField,
  Obj,
  optionField,
  parse,
  SerdeError,
  stringField,
  unexpected,
  write,
  writeEntries,
} from "interpose-plugin/serde-json";

/** The JSON-RPC error code of a call the policy denies. */
export const DENIED = -32001;

const plugin = createPlugin({ name: "tool-policy", version: "0.1.0" });

let policy = new Policy(parseConfig("{}"));

plugin.init((_config, text) => {
  policy = new Policy(parseConfig(text));
});

plugin.onResponse("tools/list", (msg) => {
  if (policy.isNoop() || msg.direction !== "to-client") {
    return undefined;
  }
  return list(msg.payload ?? "", msg);
});

plugin.onRequest("tools/call", (msg) => {
  if (policy.isNoop() || msg.direction !== "to-server") {
    return undefined;
  }
  // The host names the tool (no name for params with a duplicate or missing
  // `name`, which the careful reader rejects). A tool the policy allows and
  // neither renames nor edits passes without its params being copied into the
  // engine or parsed; checking the arguments is the backend's job.
  const exposed = msg.subject;
  if (exposed !== undefined && passesUntouched(exposed, msg)) {
    return undefined;
  }
  return call(msg.payload ?? "", msg);
});

function passesUntouched(exposed, msg) {
  return (
    policy.backendName(exposed) === exposed &&
    policy.access(exposed, exposed, msg).kind === "allowed" &&
    policy.stripped(exposed, exposed).length === 0 &&
    policy.pinned(exposed, exposed).length === 0
  );
}

function readToolCall(text) {
  const { value, start, end } = parse(text);
  const { fields, extra } = flattenedStruct(
    text,
    value,
    start,
    end,
    "ToolCallParams",
    { name: stringField(text), arguments: optionField(mapField(text)) },
    ["name"],
  );
  return { name: fields.get("name"), arguments: fields.get("arguments"), extra };
}

function writeToolCall(params) {
  const entries = [["name", params.name]];
  if (params.arguments !== undefined) {
    entries.push(["arguments", params.arguments]);
  }
  return writeEntries([...entries, ...sorted(params.extra)]);
}

function sorted(map) {
  return [...map.entries()].sort(([a], [b]) => compareKeys(a, b));
}

// ---- the fast path -------------------------------------------------------------
//
// The engine in the component interprets JavaScript, and the serde-faithful
// reader in interpose-plugin/serde-json builds its tree one interpreted step at
// a time (~100 µs for a 1 KiB call, milliseconds for a tools/list page). Most
// payloads need none of its care: the native JSON.parse gives the same values,
// and writing them again gives serde_json's bytes, whenever
//  - no key the struct reads (`name`, `arguments`, ...) is duplicated (serde
//    refuses that; JSON.parse keeps the last): checked by counting `"key"` in
//    the text against the keys the parse found;
//  - every number is a small integer written plainly (serde_json keeps `1.0`,
//    `1e3` and integers past 2^53 as it reads them; JavaScript does not);
//  - there is no `\u` escape (a lone surrogate is an error for serde_json) and
//    no character at or above U+D800 (JavaScript sorts keys by UTF-16 units,
//    serde_json by code points).
// Anything else, and every error, goes the careful way, which gives serde's
// messages and positions.

// Only a rewrite writes numbers and sorts keys, so only a rewrite checks them
// (a regular expression over the whole text costs tens of microseconds here).
const NUMBERS_OR_WIDE_CHARACTERS = /[0-9][.eE]|-0(?![0-9])|[0-9]{16}|[\uD800-\uFFFF]/;

function count(text, needle) {
  let n = 0;
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) {
    n++;
  }
  return n;
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Writes a natively parsed value as serde_json would (keys sorted; safe only under the conditions above). */
function writeNative(value) {
  if (Array.isArray(value)) {
    return `[${value.map(writeNative).join(",")}]`;
  }
  if (isObject(value)) {
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${writeNative(value[key])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}

function sortedRest(object, skip) {
  return Object.keys(object)
    .filter((key) => !skip.includes(key))
    .sort()
    .map((key) => `,${JSON.stringify(key)}:${writeNative(object[key])}`)
    .join("");
}

/** A tools/call decided without the careful reader, or `undefined` to take the careful way. */
function callFast(text, msg) {
  if (text.includes("\\u")) {
    return undefined;
  }
  let params;
  try {
    params = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(params) || typeof params.name !== "string" || count(text, '"name"') !== 1) {
    return undefined;
  }
  const hasArguments = Object.hasOwn(params, "arguments");
  if (count(text, '"arguments"') !== (hasArguments ? 1 : 0)) {
    return undefined;
  }
  if (hasArguments && params.arguments !== null && !isObject(params.arguments)) {
    return undefined;
  }
  const exposed = params.name;
  const backend = policy.backendName(exposed);
  if (backend === undefined) {
    return unknownTool(exposed);
  }
  const access = policy.access(exposed, backend, msg);
  if (access.kind !== "allowed") {
    return refusal(exposed, access);
  }
  const stripped = policy.stripped(exposed, backend);
  const pinned = policy.pinned(exposed, backend);
  if (backend === exposed && stripped.length === 0 && pinned.length === 0) {
    return PASS;
  }
  if (NUMBERS_OR_WIDE_CHARACTERS.test(text)) {
    return undefined;
  }
  // Pinned values come from the configuration, parsed the careful way.
  if (pinned.some(([, value]) => !(typeof value === "string" || typeof value === "boolean" || value === null))) {
    return undefined;
  }
  let args = params.arguments ?? undefined;
  if (stripped.length > 0 || pinned.length > 0) {
    args ??= {};
    for (const name of stripped) {
      delete args[name];
    }
    for (const [name, value] of pinned) {
      args[name] = value;
    }
  }
  const head = `{"name":${JSON.stringify(backend)}${args === undefined ? "" : `,"arguments":${writeNative(args)}`}`;
  return rewrite(`${head}${sortedRest(params, ["name", "arguments"])}}`);
}

const PASS = Symbol("pass");

function refusal(exposed, access) {
  if (access.kind === "hidden") {
    return unknownTool(exposed);
  }
  // Keys in serde_json's order (sorted), so the error is byte for byte the Rust plugin's.
  const data = access.required === undefined
    ? { plugin: "tool-policy", tool: exposed }
    : { plugin: "tool-policy", required: access.required, tool: exposed };
  return reject(DENIED, `tool \`${exposed}\` is denied by tool-policy: it ${access.why}`, data);
}

function call(text, msg) {
  const fast = callFast(text, msg);
  if (fast !== undefined) {
    return fast === PASS ? undefined : fast;
  }
  return callCarefully(text, msg);
}

function callCarefully(text, msg) {
  let params;
  try {
    params = readToolCall(text);
  } catch (error) {
    if (error instanceof SerdeError) {
      return reject(ErrorCode.INVALID_PARAMS, `invalid tools/call params: ${error.message}`);
    }
    throw error;
  }
  const exposed = params.name;
  const backend = policy.backendName(exposed);
  if (backend === undefined) {
    return unknownTool(exposed);
  }
  const access = policy.access(exposed, backend, msg);
  if (access.kind !== "allowed") {
    return refusal(exposed, access);
  }

  const stripped = policy.stripped(exposed, backend);
  const pinned = policy.pinned(exposed, backend);
  // Arguments the policy touches are always re-serialized, even when
  // unchanged, so a duplicate key cannot smuggle a second value past it.
  let changed = backend !== exposed || stripped.length > 0 || pinned.length > 0;
  if (stripped.length > 0 || pinned.length > 0) {
    params.arguments ??= new Map();
    for (const name of stripped) {
      params.arguments.delete(name);
    }
    for (const [name, value] of pinned) {
      params.arguments.set(name, value);
    }
  }
  if (backend !== exposed) {
    params.name = backend;
    changed = true;
  }
  return changed ? rewrite(writeToolCall(params)) : undefined;
}

function readToolList(text) {
  const { value, start, end } = parse(text);
  const tools = (v, entry) => {
    if (!(v instanceof Arr)) {
      throw new SerdeError(text, `invalid type: ${unexpected(v)}, expected a sequence`, invalidTypeIndex(v, entry.valueStart, entry.valueEnd));
    }
    return v.map((tool, i) => readTool(text, tool, v.spans[i]));
  };
  const { fields, extra } = flattenedStruct(text, value, start, end, "ToolsListResult", { tools }, []);
  return { tools: fields.get("tools") ?? [], extra };
}

function readTool(text, value, [start, end]) {
  const { fields, extra } = flattenedStruct(
    text,
    value,
    start,
    end,
    "Tool",
    {
      name: stringField(text),
      description: optionField(stringField(text)),
      inputSchema: optionField((v) => v),
    },
    ["name"],
  );
  return { name: fields.get("name"), description: fields.get("description"), inputSchema: fields.get("inputSchema"), extra };
}

function writeTool(tool) {
  const entries = [["name", tool.name]];
  if (tool.description !== undefined) {
    entries.push(["description", tool.description]);
  }
  if (tool.inputSchema !== undefined) {
    entries.push(["inputSchema", tool.inputSchema]);
  }
  return writeEntries([...entries, ...sorted(tool.extra)]);
}

/** Removes an argument from a tool's input schema (`properties` and `required`); whether the schema named it. */
function removeArgument(tool, name) {
  if (!(tool.inputSchema instanceof Obj) && !(tool.inputSchema instanceof Map)) {
    return false;
  }
  const schema = tool.inputSchema instanceof Map ? tool.inputSchema : new Map(mapEntries(tool.inputSchema));
  tool.inputSchema = schema;
  let found = false;
  let properties = schema.get("properties");
  if (properties instanceof Obj || properties instanceof Map) {
    properties = properties instanceof Map ? properties : new Map(mapEntries(properties));
    schema.set("properties", properties);
    found = properties.delete(name) || found;
  }
  const required = schema.get("required");
  if (Array.isArray(required)) {
    const kept = required.filter((item) => item !== name);
    schema.set("required", kept);
    found = kept.length !== required.length || found;
  }
  return found;
}

/** A tools/list decided without the careful reader, or `undefined` to take the careful way. */
function listFast(text, msg) {
  if (text.includes("\\u")) {
    return undefined;
  }
  let result;
  try {
    result = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(result)) {
    return undefined;
  }
  const tools = Object.hasOwn(result, "tools") ? result.tools : [];
  if (!Array.isArray(tools) || count(text, '"tools"') !== (Object.hasOwn(result, "tools") ? 1 : 0)) {
    return undefined;
  }
  const keys = { name: 0, description: 0, inputSchema: 0 };
  for (const tool of tools) {
    if (!isObject(tool) || typeof tool.name !== "string") {
      return undefined;
    }
    if (tool.description !== undefined && tool.description !== null && typeof tool.description !== "string") {
      return undefined;
    }
    for (const key of Object.keys(keys)) {
      keys[key] += Object.hasOwn(tool, key) ? 1 : 0;
    }
  }
  for (const [key, found] of Object.entries(keys)) {
    if (count(text, `"${key}"`) !== found) {
      return undefined;
    }
  }
  let changed = false;
  const kept = [];
  for (const tool of tools) {
    const backend = tool.name;
    const exposed = policy.exposedName(backend);
    if (exposed === undefined || !policy.listed(policy.access(exposed, backend, msg))) {
      changed = true;
      continue;
    }
    for (const name of policy.stripped(exposed, backend)) {
      changed = removeNativeArgument(tool, name) || changed;
    }
    for (const [name] of policy.pinned(exposed, backend)) {
      changed = removeNativeArgument(tool, name) || changed;
    }
    if (exposed !== backend) {
      tool.name = exposed;
      changed = true;
    }
    kept.push(tool);
  }
  if (!changed) {
    return PASS;
  }
  if (NUMBERS_OR_WIDE_CHARACTERS.test(text)) {
    return undefined;
  }
  const written = kept.map((tool) => {
    let out = `{"name":${JSON.stringify(tool.name)}`;
    if (typeof tool.description === "string") {
      out += `,"description":${JSON.stringify(tool.description)}`;
    }
    if (tool.inputSchema !== undefined && tool.inputSchema !== null) {
      out += `,"inputSchema":${writeNative(tool.inputSchema)}`;
    }
    return `${out}${sortedRest(tool, ["name", "description", "inputSchema"])}}`;
  });
  return rewrite(`{"tools":[${written.join(",")}]${sortedRest(result, ["tools"])}}`);
}

function removeNativeArgument(tool, name) {
  const schema = tool.inputSchema;
  if (!isObject(schema)) {
    return false;
  }
  let found = false;
  if (isObject(schema.properties) && Object.hasOwn(schema.properties, name)) {
    delete schema.properties[name];
    found = true;
  }
  if (Array.isArray(schema.required)) {
    const kept = schema.required.filter((item) => item !== name);
    found = kept.length !== schema.required.length || found;
    schema.required = kept;
  }
  return found;
}

function list(text, msg) {
  const fast = listFast(text, msg);
  if (fast !== undefined) {
    return fast === PASS ? undefined : fast;
  }
  return listCarefully(text, msg);
}

function listCarefully(text, msg) {
  let result;
  try {
    result = readToolList(text);
  } catch (error) {
    if (error instanceof SerdeError) {
      // Fail closed: a list we cannot read could show hidden tools.
      return reject(ErrorCode.INTERNAL_ERROR, `tool-policy could not read the tools/list result: ${error.message}`);
    }
    throw error;
  }
  let changed = false;
  const kept = [];
  for (const tool of result.tools) {
    const backend = tool.name;
    const exposed = policy.exposedName(backend);
    if (exposed === undefined || !policy.listed(policy.access(exposed, backend, msg))) {
      changed = true;
      continue;
    }
    let removed = false;
    for (const name of policy.stripped(exposed, backend)) {
      removed = removeArgument(tool, name) || removed;
    }
    for (const [name] of policy.pinned(exposed, backend)) {
      removed = removeArgument(tool, name) || removed;
    }
    if (exposed !== backend) {
      tool.name = exposed;
      removed = true;
    }
    changed = changed || removed;
    kept.push(tool);
  }
  if (!changed) {
    return undefined;
  }
  const tools = `[${kept.map(writeTool).join(",")}]`;
  const rest = sorted(result.extra).map(([key, value]) => `,${JSON.stringify(key)}:${write(value)}`).join("");
  return rewrite(`{"tools":${tools}${rest}}`);
}

function unknownTool(name) {
  return reject(ErrorCode.INVALID_PARAMS, `Unknown tool: ${name}`);
}

export default plugin;
