"""An OTLP/HTTP trace receiver for tests and benchmarks, built on the OpenTelemetry
protocol's own definitions (`opentelemetry-proto`).

It accepts `POST /v1/traces` in OTLP/HTTP's binary encoding (`application/x-protobuf`,
the default of the SDKs and of interpose) and keeps every span as a plain dict: name,
kind, ids in hex, attributes, status, times, and the resource's attributes.

In a test:

    receiver = OtlpReceiver().start()
    ... OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint ...
    spans = receiver.wait_for(lambda spans: len(spans) >= 3)
    receiver.stop()

From a shell (the trace benchmark): `python otlp_receiver.py [--port N]` prints
`listening on http://127.0.0.1:PORT` and, at each export, the number of spans so far.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

TRACES_PATH = "/v1/traces"


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def span_dict(span: Span, resource: dict[str, Any], scope: str) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "attributes": {kv.key: any_value(kv.value) for kv in span.attributes},
        "status": Status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_"),
        "status_message": span.status.message,
        "start_ns": span.start_time_unix_nano,
        "end_ns": span.end_time_unix_nano,
        "resource": resource,
        "scope": scope,
    }


class OtlpReceiver:
    def __init__(self, port: int = 0) -> None:
        self.spans: list[dict[str, Any]] = []
        self.requests = 0
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server name
                if self.path != TRACES_PATH:
                    self.send_error(404)
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Type", "") != "application/x-protobuf":
                    self.send_error(415, "only application/x-protobuf is read here")
                    return
                request = ExportTraceServiceRequest()
                try:
                    request.ParseFromString(body)
                except Exception as e:  # noqa: BLE001 - any undecodable body is a 400
                    self.send_error(400, f"cannot decode the export: {e}")
                    return
                receiver._add(request)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _add(self, request: ExportTraceServiceRequest) -> None:
        with self._changed:
            self.requests += 1
            for resource_spans in request.resource_spans:
                resource = {kv.key: any_value(kv.value) for kv in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(span_dict(span, resource, scope_spans.scope.name))
            self._changed.notify_all()

    def wait_for(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """The spans received, once `done` holds of them (AssertionError at the timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done(self.spans):
                left = deadline - time.monotonic()
                if left <= 0:
                    names = [s["name"] for s in self.spans]
                    raise AssertionError(f"the spans expected did not arrive within {timeout} s; got {names}")
                self._changed.wait(left)
            return list(self.spans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    receiver = OtlpReceiver(args.port).start()
    print(f"listening on {receiver.endpoint}", flush=True)
    seen = 0
    try:
        while True:
            receiver.wait_for(lambda spans: len(spans) > seen, timeout=3600)
            seen = len(receiver.spans)
            print(f"spans {seen}", flush=True)
    except KeyboardInterrupt:
        receiver.stop()


if __name__ == "__main__":
    main()
