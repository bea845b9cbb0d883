"""Runs the plugin under plain CPython: the SDK from sdk/python, the plugin's
own directory for its modules."""

import sys
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PLUGIN_DIR.parents[1] / "sdk" / "python"))
sys.path.insert(0, str(PLUGIN_DIR))
