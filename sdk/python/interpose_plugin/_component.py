"""The componentize-py glue: turns the WIT exports and imports into the SDK's
types. Imported only inside the component (by the app module the build script
generates), never by plugin code or native tests.

`intercept` receives the direction, kind and method, which is all routing
needs; every other part of the message is a getter on the host's `message`, a
call out of Wasm (about a microsecond each through componentize-py's runtime),
made when a handler first reads that part (`Message.__getattr__`).

The host's message is valid only during the call: reading it afterwards would
trap the instance. So the SDK's `Message` forgets it when the call returns,
after reading every part still unread if a handler kept a reference to the
message (it has no `__dict__` and no weak references, so any way of keeping it
raises its reference count). Copies are whole messages (`Message.__getstate__`).
"""

from __future__ import annotations

import sys
import weakref
from typing import Any, Callable

import componentize_py_runtime
import wit_world
from componentize_py_types import Err
from wit_world.exports import interceptor as wit_interceptor
from wit_world.imports import host as wit_host
from wit_world.imports import types as wit

from . import host, message
from .message import _UNPARSED, Direction, Kind, Message, RpcError
from .plugin import _ALL_KINDS, InitError, LoadedPlugin, _settle, load
from .verdict import PASS, Pass, Reject, Respond, Rewrite

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
# WIT enum members to the SDK's by discriminant (`_value_` is a plain
# attribute; `.value` and hashing a member run Python code). `_ALL_KINDS` is
# in WIT order, which `LoadedPlugin.route` relies on too.
assert [k.name for k in _ALL_KINDS] == [k.name for k in wit.Kind]
assert [k._value_ for k in wit.Kind] == list(range(len(wit.Kind)))
_KINDS = _ALL_KINDS
_DIRECTIONS = (Direction.TO_SERVER, Direction.TO_CLIENT)
assert [d._value_ for d in (wit.Direction.TO_SERVER, wit.Direction.TO_CLIENT)] == [0, 1]
_PASS = wit.Verdict_Pass()
_new_message = object.__new__
_refcount = sys.getrefcount


def _read_error(lent: Any) -> Any:
    error = lent.error()
    return None if error is None else RpcError(error.code, error.message, error.data)


message._READERS["error"] = _read_error


def _skip_lent_message_finalizers() -> None:
    """componentize-py (0.25.1) gives every resource object it lifts a
    `weakref.finalize`, and for a borrowed one detaches it again when the call
    returns: two Python-level calls and a registry entry per `intercept`, for a
    finalizer that can never run (the runtime holds the object for the whole
    call, then ends the borrow itself). Skip the registration for the message
    resource only; every other use of `weakref.finalize` is untouched, and
    `detach` on an unregistered finalizer returns None as the runtime expects."""
    finalize = weakref.finalize
    register = finalize.__init__
    drop_resource = componentize_py_runtime.drop_resource
    lent_type = wit.Message

    def __init__(self: Any, obj: Any, func: Any, /, *args: Any, **kwargs: Any) -> None:
        if func is drop_resource and type(obj) is lent_type:
            return
        register(self, obj, func, *args, **kwargs)

    finalize.__init__ = __init__


_skip_lent_message_finalizers()


def _lift_enums_by_lookup(*enums: Any) -> None:
    """componentize-py lifts an enum value by calling its class with the
    discriminant, which runs `EnumType.__call__` and `Enum.__new__` in Python
    (about half a microsecond in Wasm, twice per `intercept`). Give each WIT
    enum class a metaclass whose `__call__` is its discriminant -> member
    lookup, in C. Members, iteration and `isinstance` are unchanged."""
    for cls in enums:
        members = {member._value_: member for member in cls}
        cls.__class__ = type(f"_{cls.__name__}ByLookup", (type(cls),), {"__call__": members.__getitem__})


_lift_enums_by_lookup(wit.Kind, wit.Direction)


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


def _intercept_for(plugin: LoadedPlugin) -> Callable[..., Any]:
    """`intercept` for one loaded plugin."""
    routes, route, run = plugin._routes, plugin.route, plugin.run

    def intercept(direction: Any, kind: Any, method: str, msg: Any) -> Any:
        index = kind._value_
        found = routes[index].get(method)
        if found is None:
            found = route(index, method)
        handlers, single = found
        if not handlers:
            return _PASS

        out = _new_message(Message)
        out.direction = _DIRECTIONS[direction._value_]
        out.kind = _KINDS[index]
        out.method = method
        out._lent = msg
        out._parsed = _UNPARSED
        unkept = _refcount(out)
        if single is not None:
            # One handler taking the message: what `run` does, one call less.
            verdict = single(out)
            verdict = PASS if verdict is None or type(verdict) is Pass else _settle(verdict, out)
        else:
            verdict = run(handlers, out)
        # (An exception traps the instance, which is then thrown away: no
        # cleanup needed on that path.)
        if _refcount(out) > unkept:
            # A handler kept the message: read the rest while it is lent.
            out._read_all()
        out._lent = None
        if verdict is PASS:
            return _PASS
        return _verdict(verdict)

    return intercept


def bind(entry: Any) -> type:
    """The class componentize-py exports for `entry` (a module or a `Plugin`
    subclass). The plugin itself is created by `init`, once per instance."""

    class Interceptor(wit_world.exports.Interceptor):
        def init(self, config: str) -> Any:
            try:
                plugin = load(entry, config)
            except InitError as err:
                raise Err(str(err)) from None
            # componentize-py calls each export on an instance of its own, and
            # looks the method up for every call: from now on the class gives
            # this plugin's own `intercept`.
            type(self).intercept = staticmethod(_intercept_for(plugin))
            manifest = plugin.manifest
            return wit_interceptor.Manifest(
                name=manifest.name,
                version=manifest.version,
                interests=[
                    wit_interceptor.Interest(
                        kinds=[_KIND_TO_WIT[kind] for kind in interest.kinds],
                        methods=list(interest.methods),
                    )
                    for interest in manifest.interests
                ],
                wants_request=manifest.wants_request,
            )

        def intercept(self, direction: Any, kind: Any, method: str, msg: Any) -> Any:
            return wit.Verdict_Reject(wit.RpcError(RpcError.INTERNAL_ERROR, "plugin called before init", None))

    return Interceptor
