"""The componentize-py glue: turns the WIT exports and imports into the SDK's
types. Imported only inside the component (by the app module the build script
generates), never by plugin code or native tests."""

from __future__ import annotations

from typing import Any

import wit_world
from componentize_py_types import Err
from wit_world.exports import interceptor as wit_interceptor
from wit_world.imports import host as wit_host
from wit_world.imports import types as wit

from . import host
from .message import _UNPARSED, Direction, Kind, Message, RpcError
from .plugin import InitError, LoadedPlugin, load
from .verdict import Pass, Reject, Respond, Rewrite

_LEVELS = {
    "trace": wit_host.Level.TRACE,
    "debug": wit_host.Level.DEBUG,
    "info": wit_host.Level.INFO,
    "warn": wit_host.Level.WARN,
    "error": wit_host.Level.ERROR,
}
_KIND_TO_WIT = {
    Kind.REQUEST: wit.Kind.REQUEST,
    Kind.RESPONSE: wit.Kind.RESPONSE,
    Kind.ERROR: wit.Kind.ERROR,
    Kind.NOTIFICATION: wit.Kind.NOTIFICATION,
}
_W_REQUEST, _W_RESPONSE, _W_ERROR = wit.Kind.REQUEST, wit.Kind.RESPONSE, wit.Kind.ERROR
_W_TO_SERVER = wit.Direction.TO_SERVER
_PASS = wit.Verdict_Pass()


class _HostBackend:
    """`log` and `kv` through the component's imports."""

    @staticmethod
    def log(level: str, message: str) -> None:
        wit_host.log(_LEVELS[level], message)

    @staticmethod
    def kv_get(key: str) -> Any:
        return wit_host.kv_get(key)

    @staticmethod
    def kv_set(key: str, value: bytes, ttl_ms: Any) -> None:
        wit_host.kv_set(key, value, ttl_ms)

    @staticmethod
    def kv_delete(key: str) -> None:
        wit_host.kv_delete(key)


host._install(_HostBackend())


def _kind(kind: Any) -> Kind:
    # Identity checks: hashing a WIT enum member runs Python code.
    if kind is _W_REQUEST:
        return Kind.REQUEST
    if kind is _W_RESPONSE:
        return Kind.RESPONSE
    if kind is _W_ERROR:
        return Kind.ERROR
    return Kind.NOTIFICATION


def _message(msg: Any, kind: Kind) -> Message:
    out = Message.__new__(Message)
    out.direction = Direction.TO_SERVER if msg.direction is _W_TO_SERVER else Direction.TO_CLIENT
    out.kind = kind
    out.method = msg.method
    out.id = msg.id
    out.payload = msg.payload
    error = msg.error
    out.error = None if error is None else RpcError(error.code, error.message, error.data)
    out.request_payload = msg.request_payload
    out.session = msg.session
    out.server = msg.server
    out._parsed = _UNPARSED
    return out


def _verdict(verdict: Any) -> Any:
    kind = type(verdict)
    if kind is Pass:
        return _PASS
    if kind is Rewrite:
        return wit.Verdict_Rewrite(verdict.text)
    if kind is Respond:
        return wit.Verdict_Respond(verdict.text)
    if kind is Reject:
        error = verdict.error
        return wit.Verdict_Reject(wit.RpcError(error.code, error.message, error.data))
    raise TypeError(f"not a verdict: {verdict!r}")


def bind(entry: Any) -> type:
    """The class componentize-py exports for `entry` (a module or a `Plugin`
    subclass). The plugin itself is created by `init`, once per instance."""
    state: list = [None]

    class Interceptor(wit_world.exports.Interceptor):
        def init(self, config: str) -> Any:
            try:
                plugin = load(entry, config)
            except InitError as err:
                raise Err(str(err)) from None
            state[0] = plugin
            manifest = plugin.manifest
            return wit_interceptor.Manifest(
                name=manifest.name,
                version=manifest.version,
                methods=list(manifest.methods),
                kinds=[_KIND_TO_WIT[kind] for kind in manifest.kinds],
                wants_request=manifest.wants_request,
            )

        def intercept(self, msg: Any) -> Any:
            plugin: LoadedPlugin = state[0]
            if plugin is None:
                return wit.Verdict_Reject(wit.RpcError(RpcError.INTERNAL_ERROR, "plugin called before init", None))
            kind = _kind(msg.kind)
            handlers = plugin._table.get((kind, msg.method))
            if handlers is None:
                handlers = plugin.handlers_for(kind, msg.method)
            if not handlers:
                return _PASS
            return _verdict(plugin.run(handlers, _message(msg, kind)))

    return Interceptor
