#!/usr/bin/env python3
"""Soak driver for scripts/soak.sh: runs one interpose proxy with a plugin chain in
front of the echo backend, sends `tools/call echo` at a fixed rate with a mix of
payload sizes for a given time, and reports the proxy's RSS over time, lost,
duplicated and unknown answers (counted by id) and latency percentiles.

Latency runs from the moment a request was due (not when it went out), so a proxy
that stalls is charged for the queue behind it. Standard library only.
"""

import argparse
import http.client
import json
import os
import queue
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROTOCOL_VERSION = "2025-06-18"
# (payload bytes, weight): mostly small calls, some large results.
SIZES = [(100, 40), (1024, 30), (10 * 1024, 20), (64 * 1024, 8), (256 * 1024, 2)]
# Every DENIED_EVERY-th call names a tool tool-policy denies; every SECRET_EVERY-th
# carries a key redact rewrites.
DENIED_EVERY = 100
SECRET_EVERY = 10
SECRET = "api_key=sk-abcdefghijklmnopqrstuvwxyz0123456789"
HTTP_WORKERS = 8
# The id of `initialize`; soak requests count from 1.
SETUP_ID = "setup"
RSS_EVERY_S = 10.0


def main():
    args = parse_args()
    random.seed(args.seed)
    with tempfile.TemporaryDirectory(prefix="interpose-soak-") as scratch:
        plugin_dir = Path(args.plugin_dir).resolve()
        config = write_chain_config(plugin_dir, Path(scratch), args.timeout_ms)
        soak = Soak(args, config, Path(scratch))
        report = soak.run()
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    failed = report["lost"] or report["duplicated"] or report["unknown"]
    growth = report["rss"]["growth_after_warmup_pct"]
    if growth is not None and growth >= args.max_growth_pct:
        failed = True
    sys.exit(1 if failed else 0)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--transport", choices=["stdio", "http"], required=True)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=20.0, help="requests per second")
    p.add_argument("--binary", required=True, help="the interpose binary")
    p.add_argument("--backend", required=True, help="the echo backend binary")
    p.add_argument("--plugin-dir", required=True, help="where audit_log.wasm etc. are")
    p.add_argument("--timeout-ms", type=int, default=None,
                   help="per-plugin deadline (default: the demo chain's)")
    p.add_argument("--warmup-s", type=float, default=None,
                   help="warm-up excluded from RSS growth (default: a fifth, 30..120 s)")
    p.add_argument("--max-growth-pct", type=float, default=5.0)
    p.add_argument("--drain-s", type=float, default=60.0,
                   help="how long to wait for answers after the last request")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--json", help="also write the report here")
    p.add_argument("--log", help="the proxy's stderr goes here")
    return p.parse_args()


def write_chain_config(plugin_dir, scratch, timeout_ms):
    """The demo chain (host/src/demo/plugins.toml) with absolute plugin paths."""
    demo = Path(__file__).resolve().parent.parent / "host/src/demo/plugins.toml"
    text = demo.read_text()
    for name in re.findall(r'^path = "([^"]+)"', text, flags=re.M):
        wasm = plugin_dir / name
        if not wasm.exists():
            sys.exit(f"soak: {wasm} is missing; run scripts/build-plugins.sh")
        text = text.replace(f'path = "{name}"', f'path = "{wasm}"')
    if timeout_ms is not None:
        text = re.sub(r'^(path = .*)$', rf'\1\ntimeout_ms = {timeout_ms}', text, flags=re.M)
    config = scratch / "chain.toml"
    config.write_text(text)
    return config


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


class Soak:
    def __init__(self, args, config, scratch):
        self.args = args
        self.config = config
        self.scratch = scratch
        self.lock = threading.Lock()
        self.due = {}  # id -> time the request was due
        self.answers = {}  # id -> count
        self.latencies = []
        self.errors = {}  # "code message" -> count
        self.unknown = 0
        self.rss = []  # (seconds since start, KiB)
        self.initialized = threading.Event()
        self.log = open(args.log or os.devnull, "wb")

    # -- requests -----------------------------------------------------------------
    def payload(self, n):
        size = random.choices([s for s, _ in SIZES], weights=[w for _, w in SIZES])[0]
        text = "".join(random.choices("abcdefghijklmnopqrstuvwxyz ", k=size))
        if n % SECRET_EVERY == 0:
            text = SECRET + " " + text[len(SECRET) + 1:]
        tool = "delete_everything" if n % DENIED_EVERY == 0 else "echo"
        return {"jsonrpc": "2.0", "id": n, "method": "tools/call",
                "params": {"name": tool, "arguments": {"text": text}}}

    def schedule(self, send):
        """Calls send(n, message) for request n at its due time; returns the count."""
        interval = 1.0 / self.args.rate
        total = int(self.args.minutes * 60 * self.args.rate)
        start = time.monotonic()
        self.start = start
        next_rss = 0.0
        for n in range(1, total + 1):
            due = start + (n - 1) * interval
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            if now - start >= next_rss:
                self.sample_rss()
                next_rss += RSS_EVERY_S
            if self.proxy.poll() is not None:
                print(f"  the proxy exited with status {self.proxy.returncode} at request {n}; "
                      f"see its log", file=sys.stderr)
                break
            message = self.payload(n)
            with self.lock:
                self.due[n] = due
            try:
                send(n, message)
            except OSError as e:
                print(f"  request {n}: {e!r}", file=sys.stderr)
        return total

    def sample_rss(self):
        kib = rss_kib(self.proxy.pid)
        if kib is not None:
            self.rss.append((time.monotonic() - self.start, kib))
            with self.lock:
                answered = len(self.answers)
            print(f"  {self.rss[-1][0]:7.0f} s  RSS {kib / 1024:7.1f} MiB  "
                  f"answered {answered}", flush=True)

    def record(self, message):
        """One message from the proxy."""
        now = time.monotonic()
        msg_id = message.get("id")
        if msg_id == SETUP_ID:
            self.initialized.set()
            return
        if msg_id is None:
            return  # a notification
        with self.lock:
            if msg_id not in self.due:
                self.unknown += 1
                return
            self.answers[msg_id] = self.answers.get(msg_id, 0) + 1
            if self.answers[msg_id] == 1:
                self.latencies.append((now - self.due[msg_id]) * 1000)
            if "error" in message:
                error = message["error"]
                key = f'{error.get("code")} {str(error.get("message"))[:80]}'
                self.errors[key] = self.errors.get(key, 0) + 1

    def wait_for_answers(self, total):
        deadline = time.monotonic() + self.args.drain_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.answers) >= total:
                    return
            time.sleep(0.2)

    # -- transports ---------------------------------------------------------------
    def run(self):
        chain = ["run", "--config", str(self.config)]
        if self.args.transport == "stdio":
            total = self.run_stdio(chain)
        else:
            total = self.run_http(chain)
        self.log.close()
        return self.report(total)

    def run_stdio(self, chain):
        self.proxy = subprocess.Popen(
            [self.args.binary, *chain, "--", self.args.backend],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        reader = threading.Thread(target=self.read_stdio, daemon=True)
        reader.start()
        write_lock = threading.Lock()

        def send(_n, message):
            line = (json.dumps(message) + "\n").encode()
            with write_lock:
                self.proxy.stdin.write(line)
                self.proxy.stdin.flush()

        send(0, {"jsonrpc": "2.0", "id": SETUP_ID, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "soak", "version": "1"}}})
        if not self.initialized.wait(timeout=120):
            sys.exit("soak: the proxy did not answer initialize within 120 s; see its log")
        send(0, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        total = self.schedule(send)
        self.wait_for_answers(total)
        self.sample_rss()
        self.proxy.stdin.close()
        try:
            self.proxy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proxy.kill()
        return total

    def read_stdio(self):
        for line in self.proxy.stdout:
            if line.strip():
                self.record(json.loads(line))

    def run_http(self, chain):
        port = free_port()
        self.proxy = subprocess.Popen(
            [self.args.binary, *chain, "--listen", f"http://127.0.0.1:{port}", "--",
             self.args.backend],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        self.port = port
        session = self.http_initialize()
        jobs = queue.Queue()
        workers = [threading.Thread(target=self.http_worker, args=(session, jobs), daemon=True)
                   for _ in range(HTTP_WORKERS)]
        for worker in workers:
            worker.start()
        total = self.schedule(lambda n, message: jobs.put(message))
        self.wait_for_answers(total)
        for _ in workers:
            jobs.put(None)
        self.sample_rss()
        self.proxy.terminate()
        try:
            self.proxy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proxy.kill()
        return total

    def http_post(self, conn, message, session):
        headers = {"Content-Type": "application/json",
                   "Accept": "application/json, text/event-stream"}
        if session:
            headers["Mcp-Session-Id"] = session
            headers["MCP-Protocol-Version"] = PROTOCOL_VERSION
        conn.request("POST", "/mcp", body=json.dumps(message), headers=headers)
        response = conn.getresponse()
        body = response.read()
        kind = response.getheader("Content-Type", "")
        messages = []
        if kind.startswith("text/event-stream"):
            for event in body.decode().replace("\r\n", "\n").split("\n\n"):
                data = [line[5:].lstrip(" ") if line.startswith("data:") else None
                        for line in event.split("\n")]
                text = "\n".join(d for d in data if d is not None)
                # A stream's priming event (an id and an empty data field) carries no message.
                if text.strip():
                    messages.append(json.loads(text))
        elif body.strip():
            parsed = json.loads(body)
            messages.extend(parsed if isinstance(parsed, list) else [parsed])
        return response, messages

    def http_initialize(self):
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                response, _ = self.http_post(conn, {
                    "jsonrpc": "2.0", "id": SETUP_ID, "method": "initialize", "params": {
                        "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                        "clientInfo": {"name": "soak", "version": "1"}}}, None)
                break
            except OSError:
                if time.monotonic() > deadline or self.proxy.poll() is not None:
                    raise
                time.sleep(0.2)
        session = response.getheader("Mcp-Session-Id")
        self.http_post(conn, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
        conn.close()
        return session

    def http_worker(self, session, jobs):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        while (message := jobs.get()) is not None:
            try:
                response, messages = self.http_post(conn, message, session)
            except (OSError, http.client.HTTPException, ValueError) as e:
                print(f"  request {message['id']}: {e!r}", file=sys.stderr)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                continue
            if response.status != 200:
                print(f"  request {message['id']}: HTTP {response.status}", file=sys.stderr)
            for answer in messages:
                self.record(answer)

    # -- report -------------------------------------------------------------------
    def report(self, total):
        answered = sum(1 for n in range(1, total + 1) if self.answers.get(n))
        duplicated = sum(c - 1 for c in self.answers.values() if c > 1)
        latencies = sorted(self.latencies)
        warmup = self.args.warmup_s
        if warmup is None:
            warmup = min(120.0, max(30.0, self.args.minutes * 60 / 5))
        after = [kib for t, kib in self.rss if t >= warmup]
        at_warmup = after[0] if after else None
        end = self.rss[-1][1] if self.rss else None
        growth = None
        if at_warmup and end and len(after) >= 2:
            growth = round((end - at_warmup) / at_warmup * 100, 2)
        mib = lambda kib: None if kib is None else round(kib / 1024, 1)
        return {
            "transport": self.args.transport,
            "minutes": self.args.minutes,
            "rate": self.args.rate,
            "sent": total,
            "answered": answered,
            "lost": total - answered,
            "duplicated": duplicated,
            "unknown": self.unknown,
            "errors": self.errors,
            "latency_ms": {q: round(percentile(latencies, n), 2) if latencies else None
                           for q, n in [("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)]},
            "rss": {
                "samples_mib": [(round(t), mib(kib)) for t, kib in self.rss],
                "warmup_s": warmup,
                "start_mib": mib(self.rss[0][1]) if self.rss else None,
                "after_warmup_mib": mib(at_warmup),
                "end_mib": mib(end),
                "max_mib": mib(max((kib for _, kib in self.rss), default=None)),
                "growth_after_warmup_pct": growth,
            },
        }


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def print_report(r):
    lat, rss = r["latency_ms"], r["rss"]
    growth = rss["growth_after_warmup_pct"]
    print(f"soak {r['transport']}: {r['minutes']:g} min at {r['rate']:g} req/s")
    print(f"  answers:  sent {r['sent']}  answered {r['answered']}  lost {r['lost']}  "
          f"duplicated {r['duplicated']}  unknown ids {r['unknown']}")
    for error, count in sorted(r["errors"].items()):
        print(f"  errors:   {count} x {error}")
    print(f"  latency:  p50 {lat['p50']} ms  p90 {lat['p90']} ms  p99 {lat['p99']} ms  "
          f"max {lat['max']} ms")
    print(f"  RSS:      start {rss['start_mib']} MiB  after warm-up ({rss['warmup_s']:g} s) "
          f"{rss['after_warmup_mib']} MiB  end {rss['end_mib']} MiB  max {rss['max_mib']} MiB  "
          f"growth after warm-up {'n/a' if growth is None else f'{growth:+.2f} %'}")


if __name__ == "__main__":
    main()
