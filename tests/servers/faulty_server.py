#!/usr/bin/env python3
"""A misbehaving MCP backend for interpose's fault tests (stdlib only, JSON lines).

Over stdio (the default) it answers `initialize`, `tools/list` and `tools/call`; each
tool is one misbehaviour, chosen per call by the tool's name (arguments in brackets):

  echo              a normal result: the arguments as text
  stall             never answers
  die               exits at once with `status` (default 3), requests still in flight
  flood             `count` notifications/message of `size` bytes, then the answer
  answer_twice      the answer, twice
  unknown_id        answers to ids nobody sent, then the real answer
  garbage           lines that are not JSON-RPC (and bytes that are not UTF-8), then the answer
  truncated         the answer cut in the middle, and nothing else
  nan               the answer with NaN in it (what json.dumps writes by default)
  stderr_flood      `bytes` (default 400 MiB) on stderr with no newline, then the answer
  stderr_bad_utf8   a stderr line with a byte that is not UTF-8, then the answer
  stderr_lines      `count` (default 200) stderr lines of 1 KiB, then the answer
  fork_and_exit     forks a grandchild that keeps stdout and stderr open for `seconds`
                    (default 120), logs "grandchild pid N" on stderr, then exits with
                    `status` (default 7) without answering

`--fault NAME` applies misbehaviour NAME to every tools/call whatever the tool.
`--started FILE` appends a line ("started PID") to FILE as the process starts, so a test
can count starts; `--exit-at-start STATUS` then exits at once with STATUS;
`--hang-initialize` never answers `initialize` (nor anything after it).

`--http PORT` serves Streamable HTTP on 127.0.0.1:PORT/mcp instead (prints READY);
there the tools are answers no client should get: `html` (an HTML page with status
200), `bad_gateway` (the same page with status 502), `plain_text` (text/plain), `nan` and `truncated` (JSON that does not parse);
and answers a client should get as sent: `forbidden` (a JSON-RPC error with status 403),
`sse_answer` (the result as an SSE stream); other tools echo.

SIGPIPE is restored to its default, so a closed stderr kills this process on its next
write, as it would a C, Rust or Go program.
"""
import json
import os
import signal
import sys
import time

signal.signal(signal.SIGPIPE, signal.SIG_DFL)

TOOLS = [
    "echo", "stall", "die", "flood", "answer_twice", "unknown_id", "garbage",
    "truncated", "nan", "stderr_flood", "stderr_bad_utf8", "stderr_lines", "fork_and_exit",
]

out = sys.stdout.buffer
err = sys.stderr.buffer


def write_out(data):
    out.write(data)
    out.flush()


def send(message):
    write_out(json.dumps(message).encode() + b"\n")


def result(msg_id, text):
    return {"jsonrpc": "2.0", "id": msg_id,
            "result": {"content": [{"type": "text", "text": text}]}}


def initialize_result(params):
    return {
        "protocolVersion": (params or {}).get("protocolVersion", "2025-06-18"),
        "capabilities": {"tools": {}},
        "serverInfo": {"name": "faulty-server", "version": "1.0.0"},
    }


def tools_list():
    return {"tools": [{"name": name, "inputSchema": {"type": "object"}} for name in TOOLS]}


def call(msg_id, name, args):
    if name == "echo":
        send(result(msg_id, json.dumps(args)))
    elif name == "stall":
        pass
    elif name == "die":
        os._exit(int(args.get("status", 3)))
    elif name == "flood":
        text = "n" * int(args.get("size", 100))
        for i in range(int(args.get("count", 1000))):
            send({"jsonrpc": "2.0", "method": "notifications/message",
                  "params": {"level": "info", "data": {"i": i, "text": text}}})
        send(result(msg_id, "flooded"))
    elif name == "answer_twice":
        send(result(msg_id, "first"))
        send(result(msg_id, "second"))
    elif name == "unknown_id":
        send(result("nobody-asked", "stray"))
        send(result(987654321, "stray"))
        send({"jsonrpc": "2.0", "id": 987654322, "error": {"code": -1, "message": "stray"}})
        send(result(msg_id, "real"))
    elif name == "garbage":
        for line in [b"not json at all", b"{", b"[]", b'{"hello":"world"}', b"\x00\x01\x02",
                     b"\xff\xfe{\"jsonrpc\"", b'{"jsonrpc":"2.0"}', b"[1,2,3]"]:
            write_out(line + b"\n")
        send(result(msg_id, "after garbage"))
    elif name == "truncated":
        line = json.dumps(result(msg_id, "x" * 200)).encode()
        write_out(line[: len(line) // 2] + b"\n")
    elif name == "nan":
        write_out(json.dumps({"jsonrpc": "2.0", "id": msg_id,
                              "result": {"score": float("nan")}}).encode() + b"\n")
    elif name == "stderr_flood":
        total = int(args.get("bytes", 400 << 20))
        chunk = b"e" * (1 << 20)
        while total > 0:
            err.write(chunk[: min(total, len(chunk))])
            total -= len(chunk)
        err.flush()
        send(result(msg_id, "flooded stderr"))
    elif name == "stderr_bad_utf8":
        err.write(b"bad \xff byte\n")
        err.flush()
        send(result(msg_id, "wrote a bad byte"))
    elif name == "stderr_lines":
        for i in range(int(args.get("count", 200))):
            err.write(b"line %d " % i + b"l" * 1024 + b"\n")
        err.flush()
        send(result(msg_id, "wrote lines"))
    elif name == "fork_and_exit":
        pid = os.fork()
        if pid == 0:
            time.sleep(float(args.get("seconds", 120)))
            os._exit(0)
        # On a line of its own, whatever came before on stderr.
        err.write(b"\ngrandchild pid %d\n" % pid)
        err.flush()
        os._exit(int(args.get("status", 7)))
    else:
        send({"jsonrpc": "2.0", "id": msg_id,
              "error": {"code": -32602, "message": "unknown tool " + str(name)}})


def serve_stdio(fault, hang_initialize=False):
    for raw in sys.stdin.buffer:
        raw = raw.strip()
        if not raw:
            continue
        msg = json.loads(raw)
        method, msg_id = msg.get("method"), msg.get("id")
        if method is None or msg_id is None:
            continue  # answers and notifications
        params = msg.get("params") or {}
        if hang_initialize:
            continue
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": msg_id, "result": initialize_result(params)})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": msg_id, "result": tools_list()})
        elif method == "tools/call":
            call(msg_id, fault or params.get("name"), params.get("arguments") or {})
        else:
            send({"jsonrpc": "2.0", "id": msg_id,
                  "error": {"code": -32601, "message": "method not found"}})


def serve_http(port):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, content_type, body, headers=()):
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.reply(405, None, b"")

        def do_DELETE(self):
            self.reply(200, None, b"")

        def do_POST(self):
            msg = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            method, msg_id = msg.get("method"), msg.get("id")
            if msg_id is None or method is None:
                return self.reply(202, None, b"")
            params = msg.get("params") or {}
            if method == "initialize":
                answer = {"jsonrpc": "2.0", "id": msg_id, "result": initialize_result(params)}
                return self.reply(200, "application/json", json.dumps(answer).encode(),
                                  [("Mcp-Session-Id", "faulty-session")])
            name = params.get("name")
            page = b"<html>\n<head><title>502 Bad Gateway</title></head>\n<body>bad gateway</body>\n</html>\n"
            if method == "tools/call" and name == "html":
                return self.reply(200, "text/html", page)
            if method == "tools/call" and name == "bad_gateway":
                return self.reply(502, "text/html", page)
            if method == "tools/call" and name == "plain_text":
                return self.reply(200, "text/plain", b"upstream timed out")
            if method == "tools/call" and name == "nan":
                body = json.dumps({"jsonrpc": "2.0", "id": msg_id, "result": {"score": float("nan")}})
                return self.reply(200, "application/json", body.encode())
            if method == "tools/call" and name == "truncated":
                body = json.dumps(result(msg_id, "x" * 200)).encode()
                return self.reply(200, "application/json", body[: len(body) // 2])
            if method == "tools/call" and name == "forbidden":
                body = {"jsonrpc": "2.0", "id": msg_id,
                        "error": {"code": -32001, "message": "not allowed for this caller"}}
                return self.reply(403, "application/json", json.dumps(body).encode())
            if method == "tools/call" and name == "sse_answer":
                event = "event: message\ndata: " + json.dumps(result(msg_id, "on a stream")) + "\n\n"
                return self.reply(200, "text/event-stream", event.encode())
            if method == "tools/list":
                answer = {"jsonrpc": "2.0", "id": msg_id, "result": tools_list()}
            else:
                answer = result(msg_id, json.dumps(params.get("arguments")))
            self.reply(200, "application/json", json.dumps(answer).encode())

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("READY", flush=True)
    server.serve_forever()


def main():
    args = sys.argv[1:]
    if "--started" in args:
        with open(args[args.index("--started") + 1], "a") as marker:
            marker.write(f"started {os.getpid()}\n")
    if "--exit-at-start" in args:
        sys.exit(int(args[args.index("--exit-at-start") + 1]))
    if "--http" in args:
        serve_http(int(args[args.index("--http") + 1]))
    else:
        fault = args[args.index("--fault") + 1] if "--fault" in args else None
        serve_stdio(fault, hang_initialize="--hang-initialize" in args)


if __name__ == "__main__":
    main()
