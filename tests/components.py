"""Real components tests need (node, buf, redis-server, ...): found, or else.

Outside CI a missing component skips its tests with a hint. Under CI=true (or
KVGRPC_REQUIRE_COMPONENTS=1) it fails them: CI must never count a skipped
test as a pass.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def required() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("KVGRPC_REQUIRE_COMPONENTS") == "1"


def require(path: str | Path | None, what: str, hint: str) -> str:
    """Return `path` if it names an existing file or a command on PATH;
    otherwise skip the test, or fail it when components are required."""
    found = None
    if path is not None:
        found = str(path) if Path(path).is_file() else shutil.which(str(path))
    if found:
        return found
    message = f"{what} not found ({hint})"
    if required():
        pytest.fail(f"{message}; CI=true / KVGRPC_REQUIRE_COMPONENTS=1 requires it")
    pytest.skip(f"{message}; set KVGRPC_REQUIRE_COMPONENTS=1 to make this a failure")


def require_module(name: str, hint: str) -> object:
    """Import `name`; if it is missing, skip (the whole module, when called at
    import time) or, in CI, fail like `require`."""
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"Python module {name} not importable ({hint})"
        if required():
            pytest.fail(f"{message}; CI=true / KVGRPC_REQUIRE_COMPONENTS=1 requires it")
        pytest.skip(f"{message}; set KVGRPC_REQUIRE_COMPONENTS=1 to make this a failure", allow_module_level=True)
