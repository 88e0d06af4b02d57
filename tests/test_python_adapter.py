"""PythonAdapter beyond the shared contract: exact expiry with an injected
clock, the sweeper, and what the SQLite file keeps across restarts."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from contract import wait_until
from kvgrpc.adapters import PythonAdapter
from kvgrpc.ports import KVNotFoundError


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "sqlite"])
def make(request, tmp_path, clock) -> Iterator:
    """Build adapters of the parametrised kind on one clock (and one file)."""
    made: list[PythonAdapter] = []

    def build(**kwargs) -> PythonAdapter:
        path = str(tmp_path / "kv.sqlite3") if request.param == "sqlite" else None
        kwargs.setdefault("sweep_interval", None)
        adapter = PythonAdapter(path, clock=clock, **kwargs)
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        adapter.close()


def test_key_expires_exactly_at_its_ttl(make, clock):
    kv = make()
    kv.set("k", b"v", ttl=10)
    clock.advance(9.999)
    assert kv.get("k") == b"v"
    assert kv.get_ttl("k") == 1
    clock.advance(0.001)
    assert not kv.exists("k")
    with pytest.raises(KVNotFoundError):
        kv.get("k")


@pytest.mark.parametrize(("elapsed", "expected"), [(0, 10), (0.001, 10), (0.999, 10), (1.0, 9), (8.5, 2), (9.9, 1)])
def test_get_ttl_rounds_up(make, clock, elapsed, expected):
    kv = make()
    kv.set("k", b"v", ttl=10)
    clock.advance(elapsed)
    assert kv.get_ttl("k") == expected


def test_sweep_deletes_only_expired_rows(make, clock):
    kv = make()
    for i in range(1200):
        kv.set(f"short-{i}", b"v", ttl=1)
    kv.set("long", b"v", ttl=100)
    kv.set("forever", b"v")
    assert kv.count() == 1202
    assert kv.sweep_expired() == 0
    clock.advance(1)
    assert kv.sweep_expired() == 1200  # several batches
    assert kv.count() == 2
    assert kv.list_keys().keys == ("forever", "long")


def test_sweep_respects_a_ttl_changed_after_it_was_set(make, clock):
    kv = make()
    kv.set("overwritten", b"v", ttl=1)
    kv.set("overwritten", b"w")  # no TTL any more
    kv.set("renewed", b"v", ttl=1)
    assert kv.expire("renewed", 100)
    kv.set("persisted", b"v", ttl=1)
    assert kv.expire("persisted", None)
    kv.set("reinserted", b"v", ttl=1)
    clock.advance(1)
    assert kv.set_if_not_exists("reinserted", b"new", ttl=50)
    assert kv.sweep_expired() == 0
    assert kv.list_keys().keys == ("overwritten", "persisted", "reinserted", "renewed")
    clock.advance(60)
    assert kv.sweep_expired() == 1
    assert kv.list_keys().keys == ("overwritten", "persisted", "renewed")


def test_background_sweeper_empties_expired_keys(make, clock):
    kv = make(sweep_interval=0.05)
    for i in range(50):
        kv.set(f"k{i}", b"v", ttl=1)
    clock.advance(2)
    wait_until(lambda: kv.count() == 0, timeout=5)


def test_sweeper_stops_on_close(make):
    kv = make(sweep_interval=0.05)
    thread = kv._sweeper._thread
    kv.close()
    assert not thread.is_alive()


def test_invalid_sweep_interval(make):
    with pytest.raises(ValueError):
        make(sweep_interval=0)


# -- SQLite file ------------------------------------------------------------------------------


def test_sqlite_keeps_values_and_absolute_ttls_across_restart(tmp_path, clock):
    path = str(tmp_path / "kv.sqlite3")
    with PythonAdapter(path, clock=clock, sweep_interval=None) as kv:
        kv.set("forever", b"1")
        kv.set("short", b"2", ttl=10)
        kv.set("long", b"3", ttl=1000)
    clock.advance(30)  # time passes while the store is closed
    with PythonAdapter(path, clock=clock, sweep_interval=None) as kv:
        assert kv.get("forever") == b"1"
        assert not kv.exists("short")
        assert kv.get_ttl("long") == 970


def test_sqlite_pragmas_are_applied(tmp_path):
    path = tmp_path / "kv.sqlite3"
    with PythonAdapter(str(path), busy_timeout_ms=1234, sweep_interval=None) as kv:
        db = kv._table._db
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
    with PythonAdapter(str(path), journal_mode="delete", sweep_interval=None) as kv:
        assert kv._table._db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"journal_mode": "WAL; DROP TABLE kv"},
        {"journal_mode": "bogus"},
        {"busy_timeout_ms": -1},
        {"busy_timeout_ms": "5000"},
        {"synchronous": "sometimes"},
    ],
    ids=repr,
)
def test_sqlite_bad_settings_are_value_errors(tmp_path, kwargs):
    with pytest.raises(ValueError):
        PythonAdapter(str(tmp_path / "kv.sqlite3"), sweep_interval=None, **kwargs)


def test_sqlite_creates_parent_directories(tmp_path):
    path = tmp_path / "a" / "b" / "kv.sqlite3"
    with PythonAdapter(str(path), sweep_interval=None) as kv:
        kv.set("k", b"v")
    assert path.exists()


def test_sqlite_refuses_an_unknown_schema_version(tmp_path):
    path = tmp_path / "kv.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(ValueError, match="schema version 99"):
        PythonAdapter(str(path), sweep_interval=None)


def test_two_adapters_on_one_file_share_atomic_writes(tmp_path):
    """Two connections to one file behave like two processes: the upsert and
    the guarded delete are single statements, so neither can lose a race."""
    path = str(tmp_path / "kv.sqlite3")
    with PythonAdapter(path, sweep_interval=None) as a, PythonAdapter(path, sweep_interval=None) as b:
        assert a.set_if_not_exists("k", b"a") is True
        assert b.set_if_not_exists("k", b"b") is False
        assert b.get("k") == b"a"
        assert b.delete_if_value_matches("k", b"b") is False
        assert b.delete_if_value_matches("k", b"a") is True
        assert not a.exists("k")
