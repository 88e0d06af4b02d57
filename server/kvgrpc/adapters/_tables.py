"""The two tables behind `PythonAdapter`: a sorted dict, or an SQLite file.

A table stores rows of (key, value, expires_at) where expires_at is absolute
Unix time in milliseconds or None. It knows nothing of validation, locking or
clocks: the adapter checks input, holds its lock around each call and passes
`now` in, so both tables answer every question from the same instant.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from sortedcontainers import SortedDict

MAX_REMEMBERED = 100_000  # request outcomes a memory table keeps at most (oldest go first)

JOURNAL_MODES = frozenset({"DELETE", "TRUNCATE", "PERSIST", "MEMORY", "WAL", "OFF"})
SYNCHRONOUS_LEVELS = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
SCHEMA_VERSION = 2  # 2 added request outcomes and fencing counters


class Table(Protocol):
    def transaction(self) -> AbstractContextManager[object]: ...
    def recall(self, request_id: str, now: int) -> tuple[str, str, int] | None: ...
    def remember(self, request_id: str, method: str, key: str, outcome: int, expires_at: int) -> None: ...
    def next_fence(self, key: str) -> int: ...
    def lookup(self, key: str, now: int) -> tuple[bytes, int | None] | None: ...
    def put(self, key: str, value: bytes, expires_at: int | None) -> None: ...
    def insert_if_absent(self, key: str, value: bytes, expires_at: int | None, now: int) -> bool: ...
    def remove(self, key: str, now: int, if_value: bytes | None = None) -> bool: ...
    def set_expiry(self, key: str, expires_at: int | None, now: int, if_value: bytes | None) -> bool: ...
    def keys_from(self, start: str, inclusive: bool, now: int) -> Iterable[str]: ...
    def sweep(self, now: int, batch: int) -> int: ...
    def count(self) -> int: ...
    def close(self) -> None: ...


def _live(expires_at: int | None, now: int) -> bool:
    return expires_at is None or expires_at > now


class MemoryTable:
    """Values in a `SortedDict` (ordered listing); expiry times, only for keys
    that have one, in a dict and a heap. Keeping them apart saves a tuple per
    key (56 bytes): a million keys of 100 bytes fit in under 3x their size."""

    def __init__(self) -> None:
        self._values: SortedDict = SortedDict()  # key -> value
        self._expires: dict[str, int] = {}  # key -> expires_at, for keys with a TTL
        self._expiries: list[tuple[int, str]] = []  # may hold stale entries; sweep checks
        self._outcomes: dict[str, tuple[str, str, int, int]] = {}  # request id -> (method, key, outcome, expires_at)
        self._outcome_expiries: list[tuple[int, str]] = []
        self._fences: dict[str, int] = {}

    def transaction(self) -> AbstractContextManager[object]:
        return contextlib.nullcontext()  # the adapter's lock already makes each call atomic

    def recall(self, request_id: str, now: int) -> tuple[str, str, int] | None:
        found = self._outcomes.get(request_id)
        return found[:3] if found is not None and found[3] > now else None

    def remember(self, request_id: str, method: str, key: str, outcome: int, expires_at: int) -> None:
        self._outcomes[request_id] = (method, key, outcome, expires_at)
        heapq.heappush(self._outcome_expiries, (expires_at, request_id))
        while len(self._outcomes) > MAX_REMEMBERED:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        expires_at, request_id = heapq.heappop(self._outcome_expiries)
        found = self._outcomes.get(request_id)
        if found is not None and found[3] == expires_at:
            del self._outcomes[request_id]

    def next_fence(self, key: str) -> int:
        self._fences[key] = fence = self._fences.get(key, 0) + 1
        return fence

    def lookup(self, key: str, now: int) -> tuple[bytes, int | None] | None:
        value = self._values.get(key)
        if value is None:
            return None
        expires_at = self._expires.get(key)
        return (value, expires_at) if _live(expires_at, now) else None

    def put(self, key: str, value: bytes, expires_at: int | None) -> None:
        self._values[key] = value
        if expires_at is None:
            self._expires.pop(key, None)
        else:
            self._expires[key] = expires_at
            heapq.heappush(self._expiries, (expires_at, key))

    def _delete(self, key: str) -> None:
        del self._values[key]
        self._expires.pop(key, None)

    def insert_if_absent(self, key: str, value: bytes, expires_at: int | None, now: int) -> bool:
        if self.lookup(key, now) is not None:
            return False
        self.put(key, value, expires_at)
        return True

    def remove(self, key: str, now: int, if_value: bytes | None = None) -> bool:
        row = self.lookup(key, now)
        if row is None or (if_value is not None and row[0] != if_value):
            return False
        self._delete(key)
        return True

    def set_expiry(self, key: str, expires_at: int | None, now: int, if_value: bytes | None) -> bool:
        row = self.lookup(key, now)
        if row is None or (if_value is not None and row[0] != if_value):
            return False
        self.put(key, row[0], expires_at)
        return True

    def keys_from(self, start: str, inclusive: bool, now: int) -> Iterator[str]:
        expires = self._expires
        for key in self._values.irange(minimum=start, inclusive=(inclusive, True)):
            if _live(expires.get(key), now):
                yield key

    def sweep(self, now: int, batch: int) -> int:
        for _ in range(batch):
            if not self._outcome_expiries or self._outcome_expiries[0][0] > now:
                break
            self._forget_oldest()
        removed = 0
        expiries = self._expiries
        for _ in range(batch):
            if not expiries or expiries[0][0] > now:
                break
            expires_at, key = heapq.heappop(expiries)
            if self._expires.get(key) == expires_at:
                self._delete(key)
                removed += 1
        return removed

    def count(self) -> int:
        return len(self._values)

    def close(self) -> None:
        self._values.clear()
        self._expires.clear()
        self._expiries.clear()
        self._outcomes.clear()


class SQLiteTable:
    """Rows in one SQLite table. Every write is a single statement, so it is
    atomic even when several processes share the file."""

    _LIVE = "(expires_at IS NULL OR expires_at > :now)"

    def __init__(self, path: str, *, journal_mode: str, busy_timeout_ms: int, synchronous: str = "NORMAL") -> None:
        mode = journal_mode.upper()
        if mode not in JOURNAL_MODES:
            raise ValueError(f"journal_mode must be one of {sorted(JOURNAL_MODES)}, not {journal_mode!r}")
        if synchronous.upper() not in SYNCHRONOUS_LEVELS:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_LEVELS)}, not {synchronous!r}")
        if isinstance(busy_timeout_ms, bool) or not isinstance(busy_timeout_ms, int) or busy_timeout_ms < 0:
            raise ValueError(f"busy_timeout_ms must be a whole number >= 0, not {busy_timeout_ms!r}")
        self._depth = 0  # transactions open (the outer one, then savepoints)
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        # Autocommit: each statement is its own transaction. The adapter's lock
        # serialises use of this one connection across threads.
        self._db = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            applied = self._db.execute(f"PRAGMA journal_mode = {mode}").fetchone()[0]
            if path != ":memory:" and applied.upper() != mode:
                raise ValueError(f"SQLite refused journal_mode={mode} for {path} (it kept {applied})")
            self._db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            self._create_schema(path)
        except BaseException:
            self._db.close()
            raise

    def _create_schema(self, path: str) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, 1, SCHEMA_VERSION):  # version 1 files gain the new tables
            raise ValueError(f"{path} has kvgrpc schema version {version}; this kvgrpc reads version {SCHEMA_VERSION}")
        self._db.executescript(
            f"""
            BEGIN IMMEDIATE;
            CREATE TABLE IF NOT EXISTS kv (
                key TEXT PRIMARY KEY NOT NULL,
                value BLOB NOT NULL,
                expires_at INTEGER
            );
            CREATE INDEX IF NOT EXISTS kv_expires_at ON kv (expires_at) WHERE expires_at IS NOT NULL;
            CREATE TABLE IF NOT EXISTS outcomes (
                request_id TEXT PRIMARY KEY NOT NULL,
                method TEXT NOT NULL,
                key TEXT NOT NULL,
                outcome INTEGER NOT NULL,
                expires_at INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS outcomes_expires_at ON outcomes (expires_at);
            CREATE TABLE IF NOT EXISTS fences (key TEXT PRIMARY KEY NOT NULL, last INTEGER NOT NULL);
            PRAGMA user_version = {SCHEMA_VERSION};
            COMMIT;
            """
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Several statements as one: IMMEDIATE takes the write lock up front,
        so another process cannot slip in between the check and the write.
        Nested inside another transaction (a batch), it is a savepoint: it
        rolls back alone, and the outer transaction commits the rest."""
        if self._depth:
            name = f"kvgrpc_{self._depth}"
            begin, commit, rollback = (
                f"SAVEPOINT {name}",
                [f"RELEASE {name}"],
                [f"ROLLBACK TO {name}", f"RELEASE {name}"],
            )
        else:
            begin, commit, rollback = "BEGIN IMMEDIATE", ["COMMIT"], ["ROLLBACK"]
        self._db.execute(begin)
        self._depth += 1
        try:
            yield
        except BaseException:
            self._end(rollback)
            raise
        self._end(commit)

    def _end(self, statements: list[str]) -> None:
        self._depth -= 1
        for statement in statements:
            self._db.execute(statement)

    def recall(self, request_id: str, now: int) -> tuple[str, str, int] | None:
        return self._db.execute(
            "SELECT method, key, outcome FROM outcomes WHERE request_id = ? AND expires_at > ?", (request_id, now)
        ).fetchone()

    def remember(self, request_id: str, method: str, key: str, outcome: int, expires_at: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO outcomes (request_id, method, key, outcome, expires_at) VALUES (?, ?, ?, ?, ?)",
            (request_id, method, key, outcome, expires_at),
        )

    def next_fence(self, key: str) -> int:
        return self._db.execute(
            "INSERT INTO fences (key, last) VALUES (?, 1) ON CONFLICT (key) DO UPDATE SET last = last + 1"
            " RETURNING last",
            (key,),
        ).fetchone()[0]

    def lookup(self, key: str, now: int) -> tuple[bytes, int | None] | None:
        return self._db.execute(
            f"SELECT value, expires_at FROM kv WHERE key = :key AND {self._LIVE}", {"key": key, "now": now}
        ).fetchone()

    def put(self, key: str, value: bytes, expires_at: int | None) -> None:
        self._db.execute(
            "INSERT INTO kv (key, value, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            (key, value, expires_at),
        )

    def insert_if_absent(self, key: str, value: bytes, expires_at: int | None, now: int) -> bool:
        # An expired row counts as absent: the upsert overwrites only that.
        cursor = self._db.execute(
            "INSERT INTO kv (key, value, expires_at) VALUES (:key, :value, :expires_at)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
            " WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= :now",
            {"key": key, "value": value, "expires_at": expires_at, "now": now},
        )
        return cursor.rowcount == 1

    def remove(self, key: str, now: int, if_value: bytes | None = None) -> bool:
        sql = f"DELETE FROM kv WHERE key = :key AND {self._LIVE}"
        if if_value is not None:
            sql += " AND value = :value"
        return self._db.execute(sql, {"key": key, "now": now, "value": if_value}).rowcount == 1

    def set_expiry(self, key: str, expires_at: int | None, now: int, if_value: bytes | None) -> bool:
        sql = f"UPDATE kv SET expires_at = :expires_at WHERE key = :key AND {self._LIVE}"
        if if_value is not None:
            sql += " AND value = :value"
        params = {"key": key, "now": now, "value": if_value, "expires_at": expires_at}
        return self._db.execute(sql, params).rowcount == 1

    def keys_from(self, start: str, inclusive: bool, now: int) -> Iterator[str]:
        op = ">=" if inclusive else ">"
        cursor = self._db.execute(
            f"SELECT key FROM kv WHERE key {op} :start AND {self._LIVE} ORDER BY key", {"start": start, "now": now}
        )
        try:
            for (key,) in cursor:
                yield key
        finally:
            cursor.close()

    def sweep(self, now: int, batch: int) -> int:
        self._db.execute(
            "DELETE FROM outcomes WHERE rowid IN (SELECT rowid FROM outcomes WHERE expires_at <= ? LIMIT ?)",
            (now, batch),
        )
        return self._db.execute(
            "DELETE FROM kv WHERE rowid IN"
            " (SELECT rowid FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?)",
            (now, batch),
        ).rowcount

    def count(self) -> int:
        return self._db.execute("SELECT count(*) FROM kv").fetchone()[0]

    def close(self) -> None:
        self._db.close()
