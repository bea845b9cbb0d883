"""What the host offers to plugins: `log`, `store` and `kv`.

`store` and `kv` are the same key-value store; `store` raises `StoreError` when
a call fails (the store is down, too slow, ...), `kv` never does (a failed read
finds nothing, a failed write is dropped and logged by the proxy).

Inside the component these call the proxy. Under plain CPython (unit tests)
they use an in-memory stand-in that `interpose_plugin.testing` can inspect and
reset.
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Optional, Tuple, Union

__all__ = ["log", "kv", "store", "StoreError", "LEVELS"]

LEVELS = ("trace", "debug", "info", "warn", "error")


class NativeBackend:
    """The stand-in used outside the component: records log lines, keeps the
    key-value store in a dict (with expiry)."""

    def __init__(self) -> None:
        self.logs: List[Tuple[str, str]] = []
        self.store: Dict[str, Tuple[bytes, Optional[float]]] = {}

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    def kv_get(self, key: str) -> Optional[bytes]:
        entry = self.store.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and time.monotonic() >= expires:
            del self.store[key]
            return None
        return value

    def kv_set(self, key: str, value: bytes, ttl_ms: Optional[int]) -> None:
        expires = None if ttl_ms is None else time.monotonic() + ttl_ms / 1000
        self.store[key] = (bytes(value), expires)

    def kv_delete(self, key: str) -> None:
        self.store.pop(key, None)

    # The `store` functions: the same entries, and `fault` (set by
    # `interpose_plugin.testing.fail_store`) makes every call raise it.
    fault: Optional["StoreError"] = None

    def _check(self) -> None:
        if self.fault is not None:
            raise self.fault

    def store_get(self, key: str) -> Optional[bytes]:
        self._check()
        return self.kv_get(key)

    def store_set(self, key: str, value: bytes, ttl_ms: Optional[int]) -> None:
        self._check()
        self.kv_set(key, value, ttl_ms)

    def store_delete(self, key: str) -> None:
        self._check()
        self.kv_delete(key)

    def store_increment(self, key: str, delta: int, ttl_ms: Optional[int]) -> int:
        self._check()
        current = self.kv_get(key)
        if current is None:
            total = delta
            expires = None if ttl_ms is None else time.monotonic() + ttl_ms / 1000
        else:
            try:
                total = int(current.decode("ascii")) + delta
            except (UnicodeDecodeError, ValueError):
                raise StoreError("not-a-number") from None
            expires = self.store[key][1]
        if not -(2**63) <= total < 2**63:
            raise StoreError("not-a-number")
        self.store[key] = (str(total).encode("ascii"), expires)
        return total


_backend: Any = NativeBackend()


def _install(backend: Any) -> None:
    """Replaces the backend (the component glue installs the real host)."""
    global _backend
    _backend = backend


def _native() -> NativeBackend:
    if not isinstance(_backend, NativeBackend):
        raise RuntimeError("the native stand-in is not in use (running inside the component?)")
    return _backend


class Log:
    """Writes one line to the proxy's log, tagged with the plugin's name:
    `log.info("...")`, `log.warn(...)`, and so on."""

    __slots__ = ()

    def __call__(self, level: str, message: str) -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LEVELS)}")
        _backend.log(level, str(message))

    def trace(self, message: str) -> None:
        _backend.log("trace", str(message))

    def debug(self, message: str) -> None:
        _backend.log("debug", str(message))

    def info(self, message: str) -> None:
        _backend.log("info", str(message))

    def warn(self, message: str) -> None:
        _backend.log("warn", str(message))

    warning = warn

    def error(self, message: str) -> None:
        _backend.log("error", str(message))


class KeyValue:
    """The plugin's key-value store, shared by all instances of the plugin
    (instances are pooled and share no memory), private to it, and kept for
    the life of the proxy. Values are bytes; `str` values are stored as UTF-8.
    The store is bounded: when full, the entries closest to expiry go first."""

    __slots__ = ()

    def get(self, key: str) -> Optional[bytes]:
        """The value, or `None` when absent or expired."""
        return _backend.kv_get(key)

    def get_str(self, key: str) -> Optional[str]:
        """The value decoded as UTF-8, or `None`."""
        value = _backend.kv_get(key)
        return None if value is None else value.decode("utf-8")

    def get_json(self, key: str, default: Any = None) -> Any:
        """The value parsed as JSON, or `default` when absent."""
        value = _backend.kv_get(key)
        return default if value is None else json.loads(value)

    def set(self, key: str, value: Union[bytes, bytearray, str], ttl_ms: Optional[int] = None) -> None:
        """Stores a value, expiring after `ttl_ms` milliseconds if given."""
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"kv values are bytes or str, not {type(value).__name__} (see kv.set_json)")
        _backend.kv_set(key, bytes(value), ttl_ms)

    def set_json(self, key: str, value: Any, ttl_ms: Optional[int] = None) -> None:
        """Stores a value serialized as JSON."""
        self.set(key, json.dumps(value, ensure_ascii=False, separators=(",", ":")), ttl_ms)

    def delete(self, key: str) -> None:
        """Removes a value; does nothing when the key is absent."""
        _backend.kv_delete(key)


class StoreError(Exception):
    """A store call failed. `kind` is one of `unavailable` (the store cannot
    be reached; `detail` says why), `timeout`, `too-large`, `not-a-number`
    (`increment` on a value that is not an integer) or `denied` (the plugin
    has no store: `kv = false`)."""

    KINDS = ("unavailable", "timeout", "too-large", "not-a-number", "denied")

    def __init__(self, kind: str, detail: Optional[str] = None) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown store error {kind!r}")
        super().__init__(kind if detail is None else f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class Store:
    """The plugin's key-value store, with failures raised as `StoreError`
    (WIT 0.1.1). Shared by all instances of the plugin and, with
    `[store] url`, by every replica of the proxy; private to the plugin."""

    __slots__ = ()

    def get(self, key: str) -> Optional[bytes]:
        """The value, or `None` when absent or expired."""
        return _backend.store_get(key)

    def set(self, key: str, value: Union[bytes, bytearray, str], ttl_ms: Optional[int] = None) -> None:
        """Stores a value (`str` as UTF-8), expiring after `ttl_ms` milliseconds
        if given."""
        if isinstance(value, str):
            value = value.encode("utf-8")
        elif not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"store values are bytes or str, not {type(value).__name__}")
        _backend.store_set(key, bytes(value), ttl_ms)

    def delete(self, key: str) -> None:
        """Removes a value; succeeds when the key is absent."""
        _backend.store_delete(key)

    def increment(self, key: str, delta: int = 1, ttl_ms: Optional[int] = None) -> int:
        """Adds `delta` to the integer at `key` and returns the sum, atomically
        across instances and replicas. A missing key counts as 0 and is
        created expiring after `ttl_ms`; later increments keep that expiry."""
        return _backend.store_increment(key, int(delta), ttl_ms)


log = Log()
kv = KeyValue()
store = Store()
