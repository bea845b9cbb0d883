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
  return list(msg.payload ?? "");
});

plugin.onRequest("tools/call", (msg) => {
  if (policy.isNoop() || msg.direction !== "to-server") {
    return undefined;
  }
  return call(msg.payload ?? "");
});

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

function call(text) {
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
  const access = policy.access(exposed, backend);
  if (access.kind === "hidden") {
    return unknownTool(exposed);
  }
  if (access.kind === "denied") {
    return reject(DENIED, `tool \`${exposed}\` is denied by tool-policy: it ${access.why}`, {
      plugin: "tool-policy",
      tool: exposed,
    });
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

function list(text) {
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
    if (exposed === undefined || !policy.listed(policy.access(exposed, backend))) {
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
