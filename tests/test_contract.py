"""The contract suite against every implementation of the port.

In process: `PythonAdapter` in memory and on SQLite. Remote: `KeyValueClient`
talking to a real `kvgrpc serve` process on each of those stores.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from contract import KVContract
from kvgrpc.adapters import PythonAdapter
from kvgrpc.client import KeyValueClient
from kvgrpc.ports import IKeyValueAdapter


class TestPythonAdapterMemory(KVContract):
    @pytest.fixture
    def kv(self) -> Iterator[IKeyValueAdapter]:
        with PythonAdapter(sweep_interval=0.5) as adapter:
            yield adapter


class TestPythonAdapterSQLite(KVContract):
    @pytest.fixture
    def kv(self, tmp_path) -> Iterator[IKeyValueAdapter]:
        with PythonAdapter(str(tmp_path / "kv.sqlite3"), sweep_interval=0.5) as adapter:
            yield adapter


class TestClientToMemoryServer(KVContract):
    @pytest.fixture
    def kv(self, memory_server) -> Iterator[IKeyValueAdapter]:
        with KeyValueClient(memory_server.target) as client:
            yield client


class TestClientToSQLiteServer(KVContract):
    @pytest.fixture
    def kv(self, sqlite_server) -> Iterator[IKeyValueAdapter]:
        with KeyValueClient(sqlite_server.target) as client:
            yield client
