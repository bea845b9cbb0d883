"""A small HTTP server for the outbound HTTP tests: what plugins call.

    python3 http_target.py    # prints `listening on http://127.0.0.1:PORT`

Listens on 127.0.0.1 (an ephemeral port) and answers:

- ``GET /v1/hello``: 200, ``hello from the target``;
- ``POST /v1/echo``: 200, the request body back;
- ``POST /v1/moderate``: the moderation protocol (see plugins/moderation): the body
  is ``{"text": ...}``; the answer ``{"flagged": true, "reason": "..."}`` when the
  text contains ``forbidden``, else ``{"flagged": false}``;
- ``GET /v1/redirect?to=URL``: 302 to URL;
- ``GET /v1/big?bytes=N``: 200 with N bytes (default 1 MiB);
- ``GET /v1/slow``: 200 after 30 s (headers and body both late);
- ``GET /v1/trickle``: 200 at once, then a byte a second for 30 s;
- ``GET /log``: the paths requested so far, one a line (not recorded itself).
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

REQUESTED = []
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, content_type="text/plain", headers=()):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length)

    def do_GET(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/log":
            with LOCK:
                text = "".join(p + "\n" for p in REQUESTED)
            return self.send(200, text.encode())
        with LOCK:
            REQUESTED.append(url.path)
        if url.path == "/v1/hello":
            return self.send(200, b"hello from the target")
        if url.path == "/v1/redirect":
            return self.send(302, b"", headers=[("location", query["to"][0])])
        if url.path == "/v1/big":
            size = int(query.get("bytes", ["1048576"])[0])
            return self.send(200, b"x" * size)
        if url.path == "/v1/slow":
            time.sleep(30)
            return self.send(200, b"too late")
        if url.path == "/v1/trickle":
            self.send_response(200)
            self.send_header("content-length", "30")
            self.end_headers()
            for _ in range(30):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(1)
            return None
        return self.send(404, b"not found")

    def do_POST(self):
        url = urlsplit(self.path)
        with LOCK:
            REQUESTED.append(url.path)
        body = self.body()
        if url.path == "/v1/echo":
            return self.send(200, body, self.headers.get("content-type", "text/plain"))
        if url.path == "/v1/moderate":
            text = json.loads(body or b"{}").get("text", "")
            if "forbidden" in text:
                answer = {"flagged": True, "reason": "mentions something forbidden"}
            else:
                answer = {"flagged": False}
            return self.send(200, json.dumps(answer).encode(), "application/json")
        return self.send(404, b"not found")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
