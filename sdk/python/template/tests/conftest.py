"""Makes the interpose Python SDK importable: installed in the environment,
named by INTERPOSE_PY_SDK, the one `interpose plugin new` made this plugin
with, or found in an interpose checkout above this directory (sdk/python)."""

import os
import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parents[1]
# In a checkout, plugins/NAME/../../sdk/python; `interpose plugin new` writes
# the absolute path of the SDK it ships instead.
SDK_DIR = PLUGIN_DIR / "../../sdk/python"


def _find_sdk():
    if os.environ.get("INTERPOSE_PY_SDK"):
        return Path(os.environ["INTERPOSE_PY_SDK"])
    if (SDK_DIR / "interpose_plugin").is_dir():
        return SDK_DIR.resolve()
    for parent in PLUGIN_DIR.parents:
        candidate = parent / "sdk" / "python"
        if (candidate / "interpose_plugin").is_dir():
            return candidate
    return None


try:
    import interpose_plugin  # noqa: F401
except ImportError:
    sdk = _find_sdk()
    if sdk is None:
        raise RuntimeError("cannot find the interpose Python SDK: set INTERPOSE_PY_SDK to its sdk/python directory")
    sys.path.insert(0, str(sdk))
sys.path.insert(0, str(PLUGIN_DIR))
