#!/usr/bin/env python3
"""Breaks a `perf script` dump of the proxy (see profile.sh) down by plugin and kind of work.

    profile_breakdown.py PERF.TXT [MAP]

PERF.TXT: `perf script -F comm,pid,tid,ip,sym,dso` of a `perf record --call-graph dwarf`
run. MAP: wasmtime's perf map (INTERPOSE_PERF_MAP=1), by default /tmp/perf-PID.map of
the profiled proxy. The map names guest functions; which plugin a guest sample belongs
to is read from the map, which wasmtime writes module by module in load order.

A sample is put in the first category, in the order below, that matches: a guest
sample by its address; otherwise by the functions on its stack (unwinding stops at
guest frames, so a host call is seen from the host function down).
"""

import bisect
import collections
import re
import sys

PLUGIN_MARKERS = {"audit_log": "audit-log", "tool_policy": "tool-policy", "redact": "redact"}

HOST_CATEGORIES = [
    ("host call: log (tracing event, format, batch)", r"Host>::log\b"),
    ("host call: envelope", r"HostMessage>::envelope"),
    ("host call: subject (params parsed for the name)", r"HostMessage>::subject"),
    ("host call: payload", r"HostMessage>::(payload|request_payload)"),
    ("host call: other message getters", r"HostMessage>::"),
    ("host call machinery (lift arguments, lower results into the guest)", r"HostFn::entrypoint|func::host::"),
    ("instance pool take / give back", r"InstancePool|LiveToken"),
    ("guest entry and exit (call_async on a fiber, lowering, verdict)",
     r"call_intercept|on_fiber|fiber::|Fiber|TypedFunc|Func::call_raw|func::typed|post_return|checked_verdict|PluginVersion::call"),
    ("message view (what plugins read, copied once per walk)", r"MessageView"),
    ("chain walk (host: filters, breaker, stats)", r"plugin::chain"),
    ("relay, framing, transports (no plugin)",
     r"interpose::(session|wire|downstream|upstream|transport|run)"),
]


def plugin_ranges(map_path):
    blocks, plugin = [], None
    for line in open(map_path):
        address, size, name = line.rstrip("\n").split(" ", 2)
        marker = re.search(r"(audit_log|tool_policy|redact)(::|\.\.)", name)
        if marker:
            plugin = PLUGIN_MARKERS[marker.group(1)]
        start = int(address, 16)
        blocks.append((start, start + int(size, 16), plugin or "other guest code"))
    blocks.sort(key=lambda block: block[0])
    return blocks


def main():
    samples = [s for s in open(sys.argv[1]).read().split("\n\n") if s.strip()]
    parsed = []
    for sample in samples:
        lines = [line for line in sample.split("\n") if line.strip()]
        head = re.match(r"(.+?)\s+(\d+)/(\d+)", lines[0])
        if not head:
            continue
        frames = []
        for line in lines[1:]:
            frame = re.match(r"\s*([0-9a-f]+) (.*) \((.*)\)$", line)
            if frame:
                frames.append((int(frame.group(1), 16), frame.group(2), frame.group(3)))
        parsed.append((head.group(1), int(head.group(2)), frames))
    proxy_pids = collections.Counter(pid for comm, pid, _ in parsed if not comm.startswith("echo"))
    pid = proxy_pids.most_common(1)[0][0]
    blocks = plugin_ranges(sys.argv[2] if len(sys.argv) > 2 else f"/tmp/perf-{pid}.map")
    starts = [block[0] for block in blocks]
    categories = [(name, re.compile(pattern)) for name, pattern in HOST_CATEGORIES]

    def guest(ip):
        i = bisect.bisect_right(starts, ip) - 1
        if i >= 0 and blocks[i][0] <= ip < blocks[i][1]:
            return blocks[i][2]
        return None

    counts, leaves = collections.Counter(), collections.defaultdict(collections.Counter)
    for comm, sample_pid, frames in parsed:
        if sample_pid != pid:
            continue
        if comm == "log-flusher":
            category = "log flusher thread (writes batches to stderr)"
        elif comm == "interpose-epoch":
            category = "epoch ticker thread"
        else:
            plugin = guest(frames[0][0]) if frames else None
            category = f"guest code: {plugin}" if plugin else None
            for name, pattern in categories if category is None else []:
                if any(pattern.search(frame[1]) for frame in frames):
                    category = name
                    break
            if category is None:
                if frames and frames[0][2].startswith("[kernel"):
                    category = "kernel (syscalls, scheduling) outside the above"
                elif any("tokio" in frame[1] for frame in frames):
                    category = "tokio runtime"
                else:
                    category = "other (start-up: compiled-artifact cache; libc)"
        counts[category] += 1
        if frames:
            leaves[category][frames[0][1][:100]] += 1
    total = sum(counts.values())
    print(f"{total} samples of the proxy (pid {pid}); share of its CPU time:")
    for category, n in counts.most_common():
        print(f"{100 * n / total:5.1f}%  {category}")
        for leaf, m in leaves[category].most_common(3):
            print(f"          {100 * m / total:4.1f}%  {leaf}")


if __name__ == "__main__":
    main()
