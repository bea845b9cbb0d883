"""Declaring a plugin (a `Plugin` subclass or decorated module functions),
deriving its manifest, and dispatching messages to its handlers."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple, Union

from .message import Kind, Message
from .verdict import PASS, Pass, Reject, Respond, Rewrite, Verdict

__all__ = [
    "Plugin",
    "Manifest",
    "Interest",
    "ConfigError",
    "ConfigDict",
    "InitError",
    "LoadedPlugin",
    "load",
    "init",
    "on_request",
    "on_response",
    "on_error",
    "on_notification",
    "method",
    "tool_call",
    "tool_result",
]

_ALL_KINDS = (Kind.REQUEST, Kind.RESPONSE, Kind.ERROR, Kind.NOTIFICATION)
# Handler adapters: how a handler is called (compared by identity).
_MESSAGE, _TOOL_CALL, _TOOL_RESULT = "message", "tool_call", "tool_result"
_MARK = "__interpose_handlers__"
_INIT_MARK = "__interpose_init__"
# Handlers recognised by name, without a decorator.
_NAMED = {
    "on_request": frozenset({Kind.REQUEST}),
    "on_response": frozenset({Kind.RESPONSE}),
    "on_error": frozenset({Kind.ERROR}),
    "on_notification": frozenset({Kind.NOTIFICATION}),
}
_METHOD_PATTERN = re.compile(r"\*|[^*]+(?:/\*)?")


class ConfigError(ValueError):
    """Raise it from `init` to refuse the configuration; its text is shown to
    the user as it is (the proxy does not start)."""


class InitError(Exception):
    """`init` refused to load the plugin; the text is what the user sees."""


@dataclass(frozen=True)
class Interest:
    """Messages of these kinds (empty: every kind) with these methods (empty:
    every method)."""

    kinds: Tuple[Kind, ...]
    methods: Tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    """What the plugin is and which messages it wants: those any interest
    takes (no interests: every message). The host applies them before
    crossing into Wasm, so a plugin is called only for what its handlers
    take."""

    name: str
    version: str
    interests: Tuple[Interest, ...]
    wants_request: bool


@dataclass(frozen=True)
class _Spec:
    kinds: FrozenSet[Kind]
    methods: Optional[Tuple[str, ...]]  # None: every method
    adapter: str  # "message", "tool_call" or "tool_result"

    def matches(self, kind: Kind, method_name: str) -> bool:
        if kind not in self.kinds:
            return False
        if self.methods is None:
            return True
        return any(_method_matches(pattern, method_name) for pattern in self.methods)


_Handlers = Tuple[Tuple[Callable, str], ...]
# The handlers for one route, and the only one when it takes just the message.
_Route = Tuple[_Handlers, Optional[Callable]]


def _method_matches(pattern: str, name: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith("/*"):
        return name.startswith(pattern[:-1])
    return name == pattern


def _check_methods(names: Iterable[str]) -> Tuple[str, ...]:
    checked = []
    for name in names:
        if not isinstance(name, str) or not _METHOD_PATTERN.fullmatch(name):
            raise TypeError(f"a method is an exact name, `prefix/*` or `*`, not {name!r}")
        checked.append(name)
    return tuple(checked)


def _kinds(kinds: Any) -> FrozenSet[Kind]:
    if kinds is None:
        return frozenset(_ALL_KINDS)
    if isinstance(kinds, (Kind, str)):
        kinds = (kinds,)
    return frozenset(k if isinstance(k, Kind) else Kind(k) for k in kinds)


def _mark(fn: Callable, spec: _Spec) -> Callable:
    if not callable(fn):
        raise TypeError(f"a handler must be a function, not {type(fn).__name__}")
    specs = getattr(fn, _MARK, ())
    setattr(fn, _MARK, specs + (spec,))
    return fn


def _kind_decorator(kind: Kind) -> Callable:
    def decorator(*methods: Any) -> Any:
        if len(methods) == 1 and callable(methods[0]):
            return _mark(methods[0], _Spec(frozenset({kind}), None, _MESSAGE))
        names = _check_methods(methods) if methods else None
        return lambda fn: _mark(fn, _Spec(frozenset({kind}), names, _MESSAGE))

    return decorator


on_request = _kind_decorator(Kind.REQUEST)
on_request.__doc__ = """Handles requests: `@on_request` (every method) or
`@on_request("tools/call", "resources/*")`. The handler takes the `Message`
(and `self` in a class) and returns a verdict (`None` means `Pass()`)."""
on_response = _kind_decorator(Kind.RESPONSE)
on_response.__doc__ = """Handles successful answers, by the method of the request they answer."""
on_error = _kind_decorator(Kind.ERROR)
on_error.__doc__ = """Handles error answers, by the method of the request they answer."""
on_notification = _kind_decorator(Kind.NOTIFICATION)
on_notification.__doc__ = """Handles notifications (they can be passed, rewritten or dropped with `Reject`)."""


def method(*names: str, kinds: Any = None) -> Callable[[Callable], Callable]:
    """Handles messages of these methods (exact names, `prefix/*` or `*`), of
    the given kinds (a `Kind`, its name, or a list; default: every kind).
    The handler takes the `Message`."""
    if not names:
        raise TypeError("@method needs at least one method name")
    checked = _check_methods(names)
    spec = _Spec(_kinds(kinds), checked, _MESSAGE)
    return lambda fn: _mark(fn, spec)


def tool_call(fn: Optional[Callable] = None) -> Any:
    """Handles `tools/call` requests. The handler takes the parsed call
    (`mcp.ToolCall`: `name`, `arguments`, `extra`) and the `Message`. Params
    that are not a tool call (no string `name`) reach it as `None`."""
    spec = _Spec(frozenset({Kind.REQUEST}), ("tools/call",), _TOOL_CALL)
    return _mark(fn, spec) if fn is not None else (lambda f: _mark(f, spec))


def tool_result(fn: Optional[Callable] = None) -> Any:
    """Handles successful `tools/call` answers. The handler takes the parsed
    result (`mcp.ToolResult`) and the `Message`."""
    spec = _Spec(frozenset({Kind.RESPONSE}), ("tools/call",), _TOOL_RESULT)
    return _mark(fn, spec) if fn is not None else (lambda f: _mark(f, spec))


def init(fn: Callable) -> Callable:
    """Module-style plugins: marks the function called once per instance with
    the configuration (a dict) before any message."""
    setattr(fn, _INIT_MARK, True)
    return fn


class Plugin:
    """Base class of class-style plugins.

    Set `name` (default: the class name in kebab case) and `version`; override
    `init(self, config)` to read the configuration (a dict; raise
    `ConfigError` to refuse it); write handlers as methods decorated with
    `@on_request`, `@on_response`, `@on_error`, `@on_notification`,
    `@method(...)`, `@tool_call` or `@tool_result`, or named `on_request`,
    `on_response`, `on_error`, `on_notification`. Set `wants_request = True`
    to see a request's params in the answer's `msg.request_payload`.
    """

    name: Optional[str] = None
    version: str = "0.1.0"
    wants_request: bool = False

    def init(self, config: Dict[str, Any]) -> None:
        """Reads the configuration; the default accepts anything."""


def _kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).replace("_", "-").lower()


class LoadedPlugin:
    """A plugin after `init`: its manifest, and `intercept(msg)`."""

    def __init__(
        self, manifest: Manifest, handlers: List[Tuple[_Spec, Callable]], instance: Any = None
    ) -> None:
        self.manifest = manifest
        #: The `Plugin` instance (class-style plugins) or `None`.
        self.instance = instance
        self._handlers = handlers
        self._table: Dict[Tuple[Kind, str], _Handlers] = {}
        # Per kind: method -> route.
        self._routes: Dict[Kind, Dict[str, _Route]] = {kind: {} for kind in _ALL_KINDS}

    def handlers_for(self, kind: Kind, method_name: str) -> _Handlers:
        """The handlers for this kind and method, in declaration order (cached)."""
        key = (kind, method_name)
        found = self._table.get(key)
        if found is None:
            found = tuple((fn, spec.adapter) for spec, fn in self._handlers if spec.matches(kind, method_name))
            if len(self._table) >= 256:
                # Methods come from outside: keep the cache bounded.
                self._table.clear()
            self._table[key] = found
        return found

    def route(self, kind: Kind, method_name: str) -> _Route:
        """The component's dispatch: the handlers for this kind and method,
        and, when there is exactly one and it takes the message alone, that
        handler, to call without `run`. Cached."""
        table = self._routes[kind]
        found = table.get(method_name)
        if found is None:
            handlers = self.handlers_for(kind, method_name)
            single = handlers[0][0] if len(handlers) == 1 and handlers[0][1] is _MESSAGE else None
            found = (handlers, single)
            if len(table) >= 256:
                # Methods come from outside: keep the cache bounded.
                table.clear()
            table[method_name] = found
        return found

    def direct_handler(self, kind: Kind) -> Optional[Callable]:
        """The component's shortcut: the handler to call for every message of
        this kind, without looking up the method, when it is the only one for
        the kind, takes every method and takes the message alone."""
        if all(spec.methods is None or "*" in spec.methods for spec, _ in self._handlers if kind in spec.kinds):
            return self.route(kind, "*")[1]
        return None

    def intercept(self, msg: Message) -> Verdict:
        """Runs the handlers that match `msg`, in declaration order, until one
        returns something other than `Pass` (or `None`)."""
        handlers = self._table.get((msg.kind, msg.method))
        if handlers is None:
            handlers = self.handlers_for(msg.kind, msg.method)
        if not handlers:
            return PASS
        return self.run(handlers, msg)

    def run(self, handlers: _Handlers, msg: Message) -> Verdict:
        for fn, adapter in handlers:
            if adapter is _MESSAGE:
                verdict = fn(msg)
            elif adapter is _TOOL_CALL:
                verdict = fn(msg.tool_call(), msg)
            else:
                result = msg.tool_result()
                if result is None:
                    continue
                verdict = fn(result, msg)
            if verdict is None or type(verdict) is Pass:
                continue
            verdict = _settle(verdict, msg)
            if verdict is not PASS:
                return verdict
        return PASS


def _settle(verdict: Any, msg: Message) -> Verdict:
    """Checks a handler's return value; a rewrite to the same text is a pass."""
    kind = type(verdict)
    if kind is Rewrite or kind is Respond:
        if kind is Rewrite and verdict.text == msg.payload:
            return PASS
        return verdict
    if kind is Reject or isinstance(verdict, Verdict):
        return verdict
    raise TypeError(
        f"a handler returned {type(verdict).__name__}; return Pass(), Rewrite(...), Respond(...), Reject(...) or None"
    )


class ConfigDict(dict):
    """The configuration `init` receives: a dict, whose `text` attribute is
    the JSON text it was read from (for `schema.parse_config`, whose error
    positions refer to that text)."""

    text: str = "{}"


def _parse_config(config: Union[str, Dict[str, Any], None]) -> ConfigDict:
    if config is None:
        config = "{}"
    if isinstance(config, dict):
        out = ConfigDict(config)
        out.text = json.dumps(config, ensure_ascii=False, separators=(",", ":"))
        return out
    text = config if config.strip() else "{}"
    try:
        value = json.loads(text)
    except ValueError as err:
        raise InitError(f"invalid config: not JSON: {err}") from None
    if not isinstance(value, dict):
        raise InitError(f"invalid config: expected a table, got {type(value).__name__}")
    out = ConfigDict(value)
    out.text = text
    return out


def _collect(namespace: Iterable[Tuple[str, Any]], bind: Callable[[Any], Any]) -> List[Tuple[_Spec, Callable]]:
    handlers = []
    for attr, value in namespace:
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        specs = getattr(value, _MARK, None) if callable(value) else None
        if specs is None and attr in _NAMED and callable(value) and not _is_sdk(value):
            specs = (_Spec(_NAMED[attr], None, _MESSAGE),)
        for spec in specs or ():
            handlers.append((spec, bind(attr)))
    return handlers


def _is_sdk(value: Any) -> bool:
    return getattr(value, "__module__", "").startswith("interpose_plugin")


def _class_namespace(cls: type) -> List[Tuple[str, Any]]:
    seen: Dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass is object or klass is Plugin:
            continue
        for attr, value in vars(klass).items():
            seen[attr] = value
    return list(seen.items())


def find_entry(module: ModuleType) -> Any:
    """The plugin a module defines: its one `Plugin` subclass, or else the
    module itself (module-level handlers)."""
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, Plugin) and value is not Plugin
        and value.__module__ == module.__name__
    ]
    if len(classes) > 1:
        names = ", ".join(cls.__name__ for cls in classes)
        raise TypeError(f"module {module.__name__} defines several Plugin classes ({names}); keep one")
    return classes[0] if classes else module


def load(entry: Any, config: Union[str, Dict[str, Any], None] = None) -> LoadedPlugin:
    """Initializes a plugin (a `Plugin` subclass, or a module: its `Plugin`
    subclass or its module-level handlers) with `config` (JSON text or a
    dict). Raises `InitError` with the text the user should see when `init`
    refuses."""
    if isinstance(entry, ModuleType):
        entry = find_entry(entry)
    settings = _parse_config(config)

    if isinstance(entry, type):
        instance = entry()
        handlers = _collect(_class_namespace(entry), lambda attr: getattr(instance, attr))
        name = entry.name or _kebab(entry.__name__)
        version = entry.version
        wants_request = bool(entry.wants_request)
        init_hook: Optional[Callable] = instance.init
    else:
        instance = None
        namespace = list(vars(entry).items())
        handlers = _collect(namespace, lambda attr: getattr(entry, attr))
        name = getattr(entry, "NAME", None) or _kebab(entry.__name__.rpartition(".")[2])
        version = getattr(entry, "VERSION", "0.1.0")
        wants_request = bool(getattr(entry, "WANTS_REQUEST", False))
        hooks = [value for _, value in namespace if callable(value) and getattr(value, _INIT_MARK, False)]
        if len(hooks) > 1:
            raise TypeError(f"{entry.__name__} marks several functions with @init; keep one")
        init_hook = hooks[0] if hooks else None

    if not handlers:
        raise TypeError(
            f"{getattr(entry, '__name__', entry)} has no handlers: decorate a function with "
            "@on_request, @on_response, @on_notification, @method(...), @tool_call or @tool_result"
        )

    if init_hook is not None:
        try:
            init_hook(settings)
        except ConfigError as err:
            raise InitError(str(err)) from err
        except Exception as err:  # noqa: BLE001 - any failure refuses the plugin, with its reason
            raise InitError(f"init failed: {type(err).__name__}: {err}") from err

    return LoadedPlugin(_manifest(name, version, wants_request, handlers), handlers, instance)


def _manifest(name: str, version: str, wants_request: bool, handlers: List[Tuple[_Spec, Callable]]) -> Manifest:
    return Manifest(
        name=str(name),
        version=str(version),
        interests=_interests(handlers),
        wants_request=wants_request,
    )


def _interests(handlers: List[Tuple[_Spec, Callable]]) -> Tuple[Interest, ...]:
    """One interest per set of kinds the handlers take, with the methods of
    those handlers; none at all when some handler takes every message."""
    by_kinds: Dict[FrozenSet[Kind], Optional[List[str]]] = {}
    for spec, _ in handlers:
        every_method = spec.methods is None or "*" in spec.methods
        if spec.kinds not in by_kinds:
            by_kinds[spec.kinds] = None if every_method else list(spec.methods or ())
            continue
        methods = by_kinds[spec.kinds]
        if methods is None:
            continue
        if every_method:
            by_kinds[spec.kinds] = None
        else:
            methods.extend(m for m in spec.methods or () if m not in methods)
    interests = []
    for kinds, methods in by_kinds.items():
        every_kind = len(kinds) == len(_ALL_KINDS)
        if every_kind and methods is None:
            return ()
        interests.append(
            Interest(
                kinds=() if every_kind else tuple(k for k in _ALL_KINDS if k in kinds),
                methods=() if methods is None else tuple(methods),
            )
        )
    return tuple(interests)
