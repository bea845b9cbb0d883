#!/usr/bin/env python3
"""A small JSON-RPC backend over stdio for the plugin tests (stdlib only).

Every request is answered with {"echo": {"method": ..., "params": ...}}, except:
- "trigger/sampling": sends the client a "sampling/createMessage" request with the
  given params, then answers with {"sampled": <the client's result or error>};
- "trigger/notify": sends the client a "notifications/message" notification with the
  given params, then answers {"notified": true};
- "debug/seen": answers {"seen": [methods of every notification received so far]}.
Notifications are recorded, never answered.
"""
import json
import sys

seen = []
waiting = {}  # our request id -> the client's request id it serves
next_id = 0


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    msg = json.loads(line)
    if "method" not in msg:
        # An answer to one of our requests.
        original = waiting.pop(msg.get("id"), None)
        if original is not None:
            outcome = msg.get("result", msg.get("error"))
            send({"jsonrpc": "2.0", "id": original, "result": {"sampled": outcome}})
        continue
    method = msg["method"]
    params = msg.get("params")
    if "id" not in msg:
        seen.append(method)
        continue
    if method == "trigger/sampling":
        next_id += 1
        our_id = "s%d" % next_id
        waiting[our_id] = msg["id"]
        send({"jsonrpc": "2.0", "id": our_id, "method": "sampling/createMessage", "params": params})
    elif method == "trigger/notify":
        send({"jsonrpc": "2.0", "method": "notifications/message", "params": params})
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {"notified": True}})
    elif method == "debug/seen":
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {"seen": seen}})
    else:
        send({"jsonrpc": "2.0", "id": msg["id"], "result": {"echo": {"method": method, "params": params}}})
