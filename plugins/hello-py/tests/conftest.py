"""Makes the interpose Python SDK importable: installed in the environment,
named by INTERPOSE_PY_SDK, or found in an interpose checkout above this
directory (sdk/python)."""

import os
import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parents[1]


def _find_sdk():
    if os.environ.get("INTERPOSE_PY_SDK"):
        return Path(os.environ["INTERPOSE_PY_SDK"])
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
