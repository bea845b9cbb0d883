"""The componentize-py glue: turns the WIT exports and imports into the SDK's
types. Imported only inside the component (by the app module the build script
generates), never by plugin code or native tests.

`intercept` receives the direction, kind and method, which is all routing
needs; every other part of the message is a getter on the host's `message`, a
call out of Wasm (about a microsecond each through componentize-py's runtime),
made when a handler first reads that part (`Message.__getattr__`).

The host's message is valid only during the call: reading it afterwards would
trap the instance. So if a handler kept a reference to the SDK's `Message` (it
has no `__dict__` and no weak references, so any way of keeping it raises its
reference count), it reads every part still unread before the call returns,
and forgets the host's. Copies are whole messages (`Message.__getstate__`).
"""

from __future__ import annotations

import json
import operator
import sys
import weakref
from typing import Any, Callable

import wit_world
from componentize_py_runtime import drop_resource
from componentize_py_types import Err
from wit_world.exports import interceptor as wit_interceptor
from wit_world.imports import host as wit_host
from wit_world.imports import store as wit_store

try:
    from wit_world.imports import types as wit
except ImportError:
    # Built against `interceptor-plugin-http`, where `wasi:http/types` is a second
    # `types`: componentize-py names both interfaces after their packages.
    from wit_world.imports import interpose_plugin_types as wit

from . import host, http, message
from .message import _UNPARSED, Direction, Kind, Message, Principal, RpcError
from .plugin import _ALL_KINDS, InitError, LoadedPlugin, _settle, load
from .verdict import Pass, Reject, Respond, Rewrite

_LEVELS = {
    "trace": wit_host.Level.TRACE,
    "debug": wit_host.Level.DEBUG,
    "info": wit_host.Level.INFO,
    "warn": wit_host.Level.WARN,
    "error": wit_host.Level.ERROR,
}
assert [k.name for k in wit.Kind] == [k.name for k in _ALL_KINDS]
assert [d.name for d in wit.Direction] == [d.name for d in Direction]
assert [m._value_ for m in (*wit.Kind, *wit.Direction)] == [0, 1, 2, 3, 0, 1]
_KIND_TO_WIT = dict(zip(_ALL_KINDS, wit.Kind))
# componentize-py lifts an enum value by calling, with the discriminant, what
# the bindings module holds under the enum's name once the app is imported:
# the class, whose `EnumType.__call__` and `Enum.__new__` run in Python (about
# half a microsecond in Wasm, twice per `intercept`). Put there instead a dict
# lookup straight into the SDK's members (a dict's `__getitem__` is called in
# C without an argument tuple): `intercept` receives the `Direction` and `Kind`
# that plugins see. `init` lowers the manifest's kinds with `_KIND_TO_WIT`.
wit.Direction = dict(enumerate(Direction)).__getitem__
wit.Kind = dict(enumerate(_ALL_KINDS)).__getitem__
_PASS = wit.Verdict_Pass()
_refcount = sys.getrefcount


def _read_error(lent: Any) -> Any:
    error = lent.error()
    return None if error is None else RpcError(error.code, error.message, error.data)


def _read_principal(lent: Any) -> Any:
    who = lent.principal()
    return None if who is None else Principal(who.subject, who.issuer, who.scopes, json.loads(who.claims))


message._READERS["error"] = _read_error
message._READERS["principal"] = _read_principal


# componentize-py (0.25.1) lends a borrowed resource to Python as a new object
# of its class (`cls.__new__(cls)`) holding a `handle` and a `finalizer`
# (`weakref.finalize(obj, drop_resource, ...)`), and when the call returns it
# deletes `handle` and calls `finalizer.detach()`: an object and two
# Python-level calls per `intercept` (about a microsecond in Wasm) for a
# finalizer that never runs, since the runtime ends the borrow itself. The
# world's only resource is the message, only ever lent to `intercept`, so it
# is lent through one object and no finalizer, all in C:
# - the runtime looks `weakref.finalize` up once, right after importing the
#   app, and gets `"{2}".format`, which keeps of its four arguments (the
#   object, `drop_resource`, the type's drop function, the handle) only the
#   drop function, as text (`Interceptor.init` puts the real one back before
#   plugin code runs again);
# - the class's `__new__` gives the one object;
# - `finalizer` reads as the class, whose `detach` does nothing, and its
#   setter, `hasattr`, takes the text and refuses a real finalizer: a runtime
#   that got the real `weakref.finalize` traps on the first call instead of
#   leaking a registration per call.
# Every other resource (`wasi:http`'s, `wasi:io`'s, in a plugin built with
# outbound HTTP) makes its real finalizer from that text: see
# `_finalized_from_drop_text`.
_RESOURCES = [
    cls for module in (wit, wit_host, wit_store, wit_interceptor) for cls in vars(module).values() if hasattr(cls, "__exit__")
]
assert _RESOURCES == [wit.Message], f"the message is no longer the only resource: {_RESOURCES}"
_FINALIZE = weakref.finalize
weakref.finalize = "{2}".format
wit.Message.finalizer = property(type, hasattr)
wit.Message.detach = staticmethod(tuple)
wit.Message.__new__ = staticmethod({wit.Message: object.__new__(wit.Message)}.get)


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

    @staticmethod
    def store_get(key: str) -> Any:
        return _store_call(wit_store.get, key)

    @staticmethod
    def store_set(key: str, value: bytes, ttl_ms: Any) -> None:
        _store_call(wit_store.set, key, value, ttl_ms)

    @staticmethod
    def store_delete(key: str) -> None:
        _store_call(wit_store.delete, key)

    @staticmethod
    def store_increment(key: str, delta: int, ttl_ms: Any) -> int:
        return _store_call(wit_store.increment, key, delta, ttl_ms)


# The WIT `store-error` cases, as `host.StoreError` kinds.
_STORE_ERRORS = {
    wit_store.StoreError_Unavailable: "unavailable",
    wit_store.StoreError_Timeout: "timeout",
    wit_store.StoreError_TooLarge: "too-large",
    wit_store.StoreError_NotANumber: "not-a-number",
    wit_store.StoreError_Denied: "denied",
}


def _store_call(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except Err as err:
        case = err.value
        raise host.StoreError(_STORE_ERRORS[type(case)], getattr(case, "value", None)) from None


host._install(_HostBackend())
http._install_wasi()


def _finalized_from_drop_text(cls: type) -> None:
    """Gives the resource class `cls` the finalizer componentize-py would have
    made: the runtime hands it the text of the type's drop function (above), from
    which the setter makes the real `weakref.finalize`, so that the resource is
    dropped when collected or closed, and can be moved (the runtime and the
    bindings' constructors `detach` it). A finalizer set by the bindings'
    constructors (after `init`, with the real `weakref.finalize`) is kept as is."""

    def set_finalizer(resource: Any, value: Any) -> None:
        if type(value) is str:
            value = _FINALIZE(resource, drop_resource, int(value), resource.handle)
        resource._finalizer = value

    cls.finalizer = property(operator.attrgetter("_finalizer"), set_finalizer)


# The resources of the other imported interfaces: none in the plain world; in
# the world with `wasi:http`, those the `http` helper uses (imported by now).
_OTHER_RESOURCES = {
    cls
    for name, module in list(sys.modules.items())
    if name.startswith("wit_world.imports.") and module not in (wit, wit_host, wit_store)
    for cls in vars(module).values()
    if isinstance(cls, type) and cls.__module__ == name and hasattr(cls, "__exit__")
}
for _cls in _OTHER_RESOURCES:
    _finalized_from_drop_text(_cls)


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


class _LentMessage(Message):
    """The message `intercept` hands to handlers: the parts that come with the
    call are set, the rest are read when first used. (CPython makes an object
    fastest when the class's `__init__` is Python code: in Wasm, 0.1-0.2 us
    less than `object.__new__` and setting the five parts.)"""

    __slots__ = ()

    def __init__(self, direction: Direction, kind: Kind, method: str, lent: Any) -> None:
        self.direction = direction
        self.kind = kind
        self.method = method
        self._lent = lent
        self._parsed = _UNPARSED


def _intercept_for(plugin: LoadedPlugin) -> Callable[..., Any]:
    """`intercept` for one loaded plugin."""
    routes, route, run = plugin._routes, plugin.route, plugin.run
    direct = {kind: plugin.direct_handler(kind) for kind in _ALL_KINDS}

    def intercept(direction: Direction, kind: Kind, method: str, msg: Any) -> Any:
        single = direct[kind]
        if single is None:
            handlers, single = routes[kind].get(method) or route(kind, method)
            if not handlers:
                return _PASS

        out = _LentMessage(direction, kind, method, msg)
        unkept = _refcount(out)
        if single is not None:
            # One handler taking the message: what `run` does, one call less.
            verdict = single(out)
            if verdict is not None:
                verdict = _settle(verdict, out)
        else:
            verdict = run(handlers, out)
        # (An exception traps the instance, which is then thrown away: no
        # cleanup needed on that path.)
        if _refcount(out) > unkept:
            # A handler kept the message: read the rest while it is lent,
            # then forget the host's. (Otherwise it is freed on return.)
            out._read_all()
            out._lent = None
        return _PASS if verdict is None else _verdict(verdict)

    return intercept


def bind(entry: Any) -> type:
    """The class componentize-py exports for `entry` (a module or a `Plugin`
    subclass). The plugin itself is created by `init`, once per instance."""

    class Interceptor(wit_world.exports.Interceptor):
        def init(self, config: str) -> Any:
            weakref.finalize = _FINALIZE
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
