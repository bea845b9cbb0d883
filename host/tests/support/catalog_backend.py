#!/usr/bin/env python3
"""A stdio MCP server (stdlib only) whose tools, resources and prompts answer what a
catalog file says, for the plugin tests: `catalog_backend.py CATALOG.json`.

The catalog is a JSON object; every answer in it is JSON *text*, written to the client
byte for byte (so a test controls spacing, key order and escapes):

    {"tools": "<tools/list result>",
     "results": {"<tool name>": "<tools/call result>"},
     "resources": {"<uri>": "<resources/read result>"},
     "prompts": {"<prompt name>": "<prompts/get result>"}}

A `tools/call` of a tool with no entry in `results` is answered with what the server
received, so a test sees what the proxy forwarded:
    {"content":[{"type":"text","text":"<the request's params, exactly as received>"}],
     "structuredContent":{"call":N}}
where N counts the `tools/call` requests the server has received, this one included
(scripted ones too). `initialize` and `ping` get the usual answers; an unknown resource, prompt
or method gets a JSON-RPC error.
"""
import json
import re
import sys

with open(sys.argv[1], encoding="utf-8") as f:
    CATALOG = json.load(f)

calls = 0


def write(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def answer(request_id, result_text):
    write('{"jsonrpc":"2.0","id":%s,"result":%s}' % (json.dumps(request_id), result_text))


def fail(request_id, code, message):
    error = {"code": code, "message": message}
    write(json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}))


def raw_params(line, params):
    """The params of the request `line` as the bytes received."""
    decoder = json.JSONDecoder()
    for key in re.finditer(r'"params"\s*:\s*', line):
        try:
            value, end = decoder.raw_decode(line, key.end())
        except ValueError:
            continue
        if value == params:
            return line[key.end() : end]
    return json.dumps(params)


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    msg = json.loads(line)
    if "id" not in msg or "method" not in msg:
        continue  # notifications and answers
    request_id, method, params = msg["id"], msg["method"], msg.get("params") or {}
    if method == "initialize":
        result = {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}, "resources": {}, "prompts": {}},
            "serverInfo": {"name": "catalog-backend", "version": "1.0.0"},
        }
        answer(request_id, json.dumps(result))
    elif method == "ping":
        answer(request_id, "{}")
    elif method == "tools/list":
        answer(request_id, CATALOG.get("tools", '{"tools":[]}'))
    elif method == "tools/call":
        calls += 1
        scripted = CATALOG.get("results", {}).get(params.get("name"))
        if scripted is not None:
            answer(request_id, scripted)
        else:
            text = raw_params(line, params)
            result = {"content": [{"type": "text", "text": text}], "structuredContent": {"call": calls}}
            answer(request_id, json.dumps(result, separators=(",", ":")))
    elif method == "resources/read":
        scripted = CATALOG.get("resources", {}).get(params.get("uri"))
        if scripted is None:
            fail(request_id, -32002, "Resource not found: %s" % params.get("uri"))
        else:
            answer(request_id, scripted)
    elif method == "prompts/get":
        scripted = CATALOG.get("prompts", {}).get(params.get("name"))
        if scripted is None:
            fail(request_id, -32602, "Unknown prompt: %s" % params.get("name"))
        else:
            answer(request_id, scripted)
    else:
        fail(request_id, -32601, "Method not found: %s" % method)
