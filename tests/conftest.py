from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from serverproc import ServerProcess


@pytest.fixture(scope="module")
def memory_server() -> Iterator[ServerProcess]:
    with ServerProcess("memory://", "--sweep-interval", "0.5") as server:
        yield server


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    path: Path = tmp_path_factory.mktemp("sqlite-server") / "kv.sqlite3"
    with ServerProcess(f"sqlite:///{path}", "--sweep-interval", "0.5") as server:
        yield server
