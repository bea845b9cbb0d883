"""Outbound HTTP from a plugin, over `wasi:http`: `http.get(url)`,
`http.post_json(url, value)`, `http.request(method, url, ...)`. Blocking.

A plugin that calls out declares it in its project's `capabilities.toml`
(`http = ["https://api.example.com/v1/"]`): the build then uses the WIT world
with `wasi:http` (`interceptor-plugin-http`). The proxy sends a request only
when the user's configuration grants its URL, and cuts it off at the plugin's
call deadline and response size cap; anything else raises `HttpError`, whose
`code` names the `wasi:http` error (`HttpRequestDenied`,
`DestinationIpProhibited`, `HttpResponseBodySize`, ...). Redirects are not
followed.

Under plain CPython (unit tests) there is no `wasi:http`: calls go to a stand-in
that `set_native_handler` replaces (by default, it raises `HttpError`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

__all__ = ["HttpError", "Response", "request", "get", "post_json", "set_native_handler"]

# Largest chunk `blocking-write-and-flush` takes.
_WRITE_CHUNK = 4096


class HttpError(Exception):
    """A request that failed: `code` is the `wasi:http` error's name, or `None`
    when the failure was found in the plugin (a bad URL, a lost response)."""

    def __init__(self, message: str, code: Optional[str] = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Response:
    status: int
    headers: List[Tuple[str, bytes]] = field(default_factory=list)
    body: bytes = b""

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def get(url: str, *, headers: Optional[List[Tuple[str, str]]] = None, timeout_ms: Optional[int] = None) -> Response:
    return request("GET", url, headers=headers, timeout_ms=timeout_ms)


def post_json(url: str, value: Any, *, headers: Optional[List[Tuple[str, str]]] = None, timeout_ms: Optional[int] = None) -> Response:
    """POSTs `value` as JSON."""
    all_headers = [("content-type", "application/json"), *(headers or [])]
    body = json.dumps(value).encode()
    return request("POST", url, body=body, headers=all_headers, timeout_ms=timeout_ms)


def request(
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: Optional[List[Tuple[str, str]]] = None,
    timeout_ms: Optional[int] = None,
) -> Response:
    """Sends a request and reads the whole response. `timeout_ms` limits
    connecting, the response's start and the gaps between its bytes (each); the
    proxy ends the request at the plugin's call deadline anyway."""
    return _handler(method, url, body, list(headers or []), timeout_ms)


def _no_http(method: str, url: str, body: bytes, headers: List[Tuple[str, str]], timeout_ms: Optional[int]) -> Response:
    raise HttpError(f"HTTP request failed: no wasi:http outside the component ({method} {url})")


_handler: Callable[..., Response] = _no_http


def set_native_handler(handler: Optional[Callable[..., Response]]) -> None:
    """For unit tests under CPython: `handler(method, url, body, headers,
    timeout_ms)` answers requests (returns a `Response` or raises `HttpError`);
    `None` restores the default, which raises."""
    global _handler
    _handler = handler or _no_http


def _split_url(url: str) -> Tuple[str, str, str]:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise HttpError(f"HTTP request failed: `{url}` is not an absolute URL")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    if not authority:
        raise HttpError(f"HTTP request failed: `{url}` has no host")
    if not path.startswith("/"):
        path = "/" + path
    return scheme.lower(), authority, path


# The component's `wasi:http` bindings (`outgoing_handler`, `streams`,
# `wasi_http_types`), imported by `_install_wasi`.
_wasi: Tuple[Any, Any, Any] = (None, None, None)


def _without_wasi_http(method: str, url: str, body: bytes, headers: List[Tuple[str, str]], timeout_ms: Optional[int]) -> Response:
    raise HttpError(
        "HTTP request failed: the plugin was built without wasi:http; declare `http` in its "
        "capabilities.toml and build it again"
    )


def _install_wasi() -> None:
    """Called by the component glue when the component is built: componentize-py
    keeps the modules imported then, so the bindings are imported here, not at
    the first request. A component built without `wasi:http` has none."""
    global _wasi
    try:
        from wit_world.imports import outgoing_handler, streams
        from wit_world.imports import wasi_http_types
    except ImportError:
        set_native_handler(_without_wasi_http)
        return
    _wasi = (outgoing_handler, streams, wasi_http_types)
    set_native_handler(_wasi_request)


def _wasi_request(method: str, url: str, body: bytes, headers: List[Tuple[str, str]], timeout_ms: Optional[int]) -> Response:
    """The request over the component's `wasi:http` imports."""
    from componentize_py_types import Err

    outgoing_handler, streams, t = _wasi
    def failed(code: Any) -> HttpError:
        name = type(code).__name__.removeprefix("ErrorCode_")
        value = getattr(code, "value", None)
        text = name if value is None else f"{name}({value!r})"
        return HttpError(f"HTTP request failed: {text}", name)

    def stream_failed(error: Any) -> HttpError:
        if isinstance(error, streams.StreamError_LastOperationFailed):
            code = t.http_error_code(error.value)
            if code is not None:
                return failed(code)
            return HttpError(f"HTTP request failed: {error.value.to_debug_string()}")
        return HttpError("HTTP request failed: the stream closed early")

    scheme, authority, path = _split_url(url)
    methods = {
        "GET": t.Method_Get(), "POST": t.Method_Post(), "PUT": t.Method_Put(),
        "DELETE": t.Method_Delete(), "PATCH": t.Method_Patch(), "HEAD": t.Method_Head(),
        "OPTIONS": t.Method_Options(),
    }
    fields = t.Fields.from_list([(name, value.encode()) for name, value in headers])
    outgoing = t.OutgoingRequest(fields)
    outgoing.set_method(methods.get(method.upper()) or t.Method_Other(method))
    outgoing.set_scheme({"http": t.Scheme_Http(), "https": t.Scheme_Https()}.get(scheme) or t.Scheme_Other(scheme))
    outgoing.set_authority(authority)
    outgoing.set_path_with_query(path)
    outgoing_body = outgoing.body()
    options = None
    if timeout_ms is not None:
        nanos = int(timeout_ms) * 1_000_000
        options = t.RequestOptions()
        options.set_connect_timeout(nanos)
        options.set_first_byte_timeout(nanos)
        options.set_between_bytes_timeout(nanos)
    try:
        pending = outgoing_handler.handle(outgoing, options)
    except Err as e:
        raise failed(e.value) from None
    write_error: Optional[HttpError] = None
    try:
        if body:
            with outgoing_body.write() as out:
                for start in range(0, len(body), _WRITE_CHUNK):
                    out.blocking_write_and_flush(body[start:start + _WRITE_CHUNK])
        t.OutgoingBody.finish(outgoing_body, None)
    except Err as e:
        # Kept for after the response: a refused request closes the body
        # stream, and its refusal is what explains the failed write.
        stream_error = (streams.StreamError_LastOperationFailed, streams.StreamError_Closed)
        write_error = stream_failed(e.value) if isinstance(e.value, stream_error) else failed(e.value)
    with pending.subscribe() as ready:
        ready.block()
    answer = pending.get()
    if answer is None or isinstance(answer, Err):
        raise HttpError("HTTP request failed: the response was lost")
    result = answer.value
    if isinstance(result, Err):
        raise failed(result.value)
    if write_error is not None:
        raise write_error
    incoming = result.value
    status = incoming.status()
    with incoming.headers() as fields:
        response_headers = list(fields.entries())
    incoming_body = incoming.consume()
    chunks = []
    with incoming_body.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(64 * 1024))
            except Err as e:
                if isinstance(e.value, streams.StreamError_Closed):
                    break
                raise stream_failed(e.value) from None
    t.IncomingBody.finish(incoming_body)
    return Response(status, response_headers, b"".join(chunks))
