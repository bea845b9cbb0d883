"""Running plugins under plain CPython, for unit tests.

    from interpose_plugin.testing import load_plugin, take_logs
    plugin = load_plugin("plugins/redact-py", {"defaults": ["email"]})
    verdict = plugin.intercept(Message.response("tools/call", {...}))

The host calls (`log`, `kv`) go to an in-memory stand-in: `take_logs()`
returns and clears the lines logged so far, `reset()` also empties the store.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Optional, Tuple, Union

from . import host
from .plugin import LoadedPlugin, load

__all__ = ["load_plugin", "import_plugin", "take_logs", "reset", "kv_store", "fail_store"]

_counter = itertools.count()


def import_plugin(path: Union[str, Path]) -> ModuleType:
    """Imports a plugin's module from a file, or from `plugin.py` in a
    directory, under a name of its own (so several plugins, each with a
    `plugin.py`, can be tested in one process). The plugin's directory is put
    on `sys.path` so its sibling modules import as they do in the component."""
    path = Path(path)
    if path.is_dir():
        path = path / "plugin.py"
    if not path.is_file():
        raise FileNotFoundError(f"no plugin module at {path}")
    directory = str(path.parent.resolve())
    if directory not in sys.path:
        sys.path.insert(0, directory)
    name = f"_interpose_plugin_{path.stem}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_plugin(plugin: Any, config: Union[str, Dict[str, Any], None] = None) -> LoadedPlugin:
    """Loads and `init`s a plugin: a path (file or directory), a module, or a
    `Plugin` subclass. Raises `InitError` when `init` refuses the config."""
    if isinstance(plugin, (str, Path)):
        plugin = import_plugin(plugin)
    return load(plugin, config)


def take_logs() -> List[Tuple[str, str]]:
    """The `(level, message)` lines logged since the last call."""
    backend = host._native()
    logs, backend.logs = backend.logs, []
    return logs


def kv_store() -> Dict[str, bytes]:
    """The key-value store's live entries."""
    backend = host._native()
    return {key: value for key in list(backend.store) if (value := backend.kv_get(key)) is not None}


def fail_store(kind: Optional[str], detail: Optional[str] = None) -> None:
    """Makes every `store` call raise `StoreError(kind, detail)` until called
    with `None` (or `reset()`): how a test sees what its plugin does when the
    store is down."""
    host._native().fault = None if kind is None else host.StoreError(kind, detail)


def reset() -> None:
    """Clears the logs and the key-value store."""
    host._install(host.NativeBackend())
