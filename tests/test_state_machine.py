"""Model-based testing of the adapter port: hypothesis interleaves every
operation, and moves an injected clock so TTLs expire, checking each answer
against a plain reference model. Runs on the memory and SQLite stores."""

from __future__ import annotations

import shutil
import tempfile

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kvgrpc.adapters import PythonAdapter
from kvgrpc.ports import KVNotFoundError

KEYS = st.sampled_from(["a", "ab", "abc", "a*", "a?", "b", "é", "a\x00", "😀", "z"])
PREFIXES = st.sampled_from(["", "a", "ab", "a*", "b", "é", "q"])
VALUES = st.sampled_from([b"", b"v1", b"v2", b"\x00\xff"])
TTLS = st.sampled_from([None, 1, 2, 5, 60])
START = 1_700_000_000_000  # ms


class PortModel(RuleBasedStateMachine):
    """The reference: a dict of key -> (value, expires_at_ms) and a clock."""

    persistent = False

    @initialize()
    def open_store(self) -> None:
        self.now_ms = START
        self.rows: dict[str, tuple[bytes, int | None]] = {}
        self.fences: dict[str, int] = {}
        self.outcomes: dict[str, tuple[str, str, object]] = {}
        self.directory = tempfile.mkdtemp() if self.persistent else None
        path = f"{self.directory}/kv.sqlite3" if self.directory else None
        self.kv = PythonAdapter(path, sweep_interval=None, clock=lambda: self.now_ms / 1000)

    def teardown(self) -> None:
        self.kv.close()
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- the model -----------------------------------------------------------------------

    def live(self, key: str) -> tuple[bytes, int | None] | None:
        row = self.rows.get(key)
        return row if row is not None and (row[1] is None or row[1] > self.now_ms) else None

    def expiry(self, ttl: int | None) -> int | None:
        return None if ttl is None else self.now_ms + ttl * 1000

    # -- rules -----------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([0.001, 0.5, 0.999, 1, 2.5, 10]))
    def advance_clock(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)

    @rule(key=KEYS, value=VALUES, ttl=TTLS)
    def set(self, key: str, value: bytes, ttl: int | None) -> None:
        self.kv.set(key, value, ttl=ttl)
        self.rows[key] = (value, self.expiry(ttl))

    @rule(key=KEYS, value=VALUES, ttl=TTLS, fenced=st.booleans())
    def set_if_not_exists(self, key: str, value: bytes, ttl: int | None, fenced: bool) -> None:
        expected = self.live(key) is None
        if fenced:
            fence = self.kv.set_if_not_exists_fenced(key, value, ttl=ttl)
            if expected:
                self.fences[key] = self.fences.get(key, 0) + 1
            assert fence == (self.fences[key] if expected else None)
        else:
            assert self.kv.set_if_not_exists(key, value, ttl=ttl) is expected
        if expected:
            self.rows[key] = (value, self.expiry(ttl))

    @rule(key=KEYS, value=VALUES, request_id=st.sampled_from(["r1", "r2", "r3"]))
    def set_if_not_exists_with_request_id(self, key: str, value: bytes, request_id: str) -> None:
        remembered = self.outcomes.get(request_id)
        if remembered is not None and remembered[:2] != ("SetIfNotExists", key):
            with pytest.raises(ValueError):
                self.kv.set_if_not_exists(key, value, request_id=request_id)
            return
        inserted = self.kv.set_if_not_exists(key, value, request_id=request_id)
        if remembered is not None:
            assert inserted is remembered[2]  # a repeat: the first outcome, nothing written
            return
        assert inserted is (self.live(key) is None)
        if inserted:
            self.rows[key] = (value, None)
        self.outcomes[request_id] = ("SetIfNotExists", key, inserted)

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        if self.live(key) is None:
            with pytest.raises(KVNotFoundError):
                self.kv.delete(key)
        else:
            self.kv.delete(key)
            del self.rows[key]

    @rule(key=KEYS, value=VALUES)
    def delete_if_value_matches(self, key: str, value: bytes) -> None:
        row = self.live(key)
        expected = row is not None and row[0] == value
        assert self.kv.delete_if_value_matches(key, value) is expected
        if expected:
            del self.rows[key]

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        row = self.live(key)
        if row is None:
            with pytest.raises(KVNotFoundError):
                self.kv.get(key)
        else:
            assert self.kv.get(key) == row[0]

    @rule(key=KEYS)
    def get_ttl(self, key: str) -> None:
        row = self.live(key)
        if row is None:
            with pytest.raises(KVNotFoundError):
                self.kv.get_ttl(key)
        elif row[1] is None:
            assert self.kv.get_ttl(key) is None
        else:
            assert self.kv.get_ttl(key) == max(1, -(-(row[1] - self.now_ms) // 1000))

    @rule(key=KEYS, ttl=TTLS, if_value=st.one_of(st.none(), VALUES))
    def expire(self, key: str, ttl: int | None, if_value: bytes | None) -> None:
        row = self.live(key)
        expected = row is not None and (if_value is None or row[0] == if_value)
        assert self.kv.expire(key, ttl, if_value=if_value) is expected
        if expected:
            self.rows[key] = (row[0], self.expiry(ttl))  # type: ignore[index]

    @rule(prefix=PREFIXES, limit=st.integers(1, 4), after=st.one_of(st.none(), KEYS))
    def list_keys(self, prefix: str, limit: int, after: str | None) -> None:
        matching = sorted(
            k for k in self.rows if self.live(k) and k.startswith(prefix) and (after is None or k > after)
        )
        page = self.kv.list_keys(prefix, limit=limit, after=after)
        assert list(page.keys) == matching[:limit]
        assert page.next_after == (matching[limit - 1] if len(matching) > limit else None)

    @rule()
    def sweep(self) -> None:
        expired = [k for k, (_, exp) in self.rows.items() if exp is not None and exp <= self.now_ms]
        assert self.kv.sweep_expired() == len(expired)
        for key in expired:
            del self.rows[key]

    @precondition(lambda self: self.persistent)
    @rule()
    def restart(self) -> None:
        """Close and reopen the file: everything, TTLs included, must survive."""
        self.kv.close()
        self.kv = PythonAdapter(f"{self.directory}/kv.sqlite3", sweep_interval=None, clock=lambda: self.now_ms / 1000)

    @invariant()
    def counts_agree(self) -> None:
        assert self.kv.count() == len(self.rows)


class SQLitePortModel(PortModel):
    persistent = True


SETTINGS = settings(max_examples=60, stateful_step_count=40, deadline=None, derandomize=True)
TestMemoryPortModel = PortModel.TestCase
TestMemoryPortModel.settings = SETTINGS
TestSQLitePortModel = SQLitePortModel.TestCase
TestSQLitePortModel.settings = SETTINGS
