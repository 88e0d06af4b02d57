"""`PythonAdapter`: the in-process store, in memory or in an SQLite file."""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator

from kvgrpc.adapters._tables import MemoryTable, SQLiteTable, Table
from kvgrpc.ports import IKeyValueAdapter, KVInvalidArgumentError, KVKeyPage, KVNotFoundError
from kvgrpc.validation import (
    DEFAULT_PAGE_LIMIT,
    ValueLike,
    check_key,
    check_limit,
    check_optional_ttl,
    check_prefix,
    check_request_id,
    to_bytes,
)

__all__ = ["PythonAdapter"]

log = logging.getLogger(__name__)

REQUEST_MEMORY_MS = 600_000  # how long the outcome of a request id is remembered for retries
DEFAULT_SWEEP_INTERVAL = 5.0  # seconds between background sweeps of expired keys
SWEEP_BATCH = 500  # rows deleted per lock hold, so a sweep never stalls other calls for long
SWEEP_PAUSE = 0.001  # seconds between batches


class PythonAdapter(IKeyValueAdapter):
    """A thread-safe key/value store, in memory or persisted to SQLite.

    With `persistence_path`, rows live in an SQLite file (created if needed)
    with the given journal mode, `synchronous=NORMAL` and busy timeout;
    expiry times are absolute, so TTLs survive restarts, and every write is
    one atomic statement, so conditional writes stay atomic even when several
    processes open the same file. Without it, rows live in memory.

    A background thread deletes expired rows every `sweep_interval` seconds
    (None: never; `sweep_expired()` can be called instead). `clock` returns
    Unix time in seconds; tests inject their own.
    """

    def __init__(
        self,
        persistence_path: str | None = None,
        journal_mode: str = "WAL",
        busy_timeout_ms: int = 5000,
        *,
        synchronous: str = "NORMAL",
        sweep_interval: float | None = DEFAULT_SWEEP_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.RLock()
        self._clock = clock
        self._table: Table
        if persistence_path is None:
            self._table = MemoryTable()
        else:
            self._table = SQLiteTable(
                persistence_path, journal_mode=journal_mode, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous
            )
        self._closed = False
        self.swept_total = 0  # expired rows deleted by sweeps so far
        self._sweeper: _Sweeper | None = None
        if sweep_interval is not None:
            self._sweeper = _Sweeper(self, sweep_interval)

    def _now(self) -> int:
        return int(self._clock() * 1000)

    def _expires_at(self, ttl: int | None) -> int | None:
        return None if ttl is None else self._now() + ttl * 1000

    def get(self, key: str) -> bytes:
        key = check_key(key)
        with self._lock:
            row = self._table.lookup(key, self._now())
        if row is None:
            raise KVNotFoundError(key)
        return row[0]

    def set(self, key: str, value: ValueLike, ttl: int | None = None) -> None:
        key, data, ttl = check_key(key), to_bytes(value), check_optional_ttl(ttl)
        with self._lock:
            self._table.put(key, data, self._expires_at(ttl))

    def _once(self, request_id: str | None, method: str, key: str, write: Callable[[int], int]) -> int:
        """Run `write(now)` and return its outcome, once per request id: a
        repeated id gets the outcome recorded the first time, atomically with
        that write, so a retry after a lost reply never writes twice."""
        request_id = check_request_id(request_id)
        with self._lock:
            now = self._now()
            if request_id is None:
                return write(now)
            with self._table.transaction():
                recalled = self._table.recall(request_id, now)
                if recalled is not None:
                    if recalled[:2] != (method, key):
                        raise KVInvalidArgumentError(
                            "request_id was already used for a different request; use a fresh id per request",
                            reason="REQUEST_ID_REUSED",
                            field="request_id",
                        )
                    return recalled[2]
                outcome = write(now)
                self._table.remember(request_id, method, key, outcome, now + REQUEST_MEMORY_MS)
                return outcome

    def set_if_not_exists(
        self, key: str, value: ValueLike, ttl: int | None = None, *, request_id: str | None = None
    ) -> bool:
        key, data, ttl = check_key(key), to_bytes(value), check_optional_ttl(ttl)

        def insert(now: int) -> int:
            return int(self._table.insert_if_absent(key, data, None if ttl is None else now + ttl * 1000, now))

        return bool(self._once(request_id, "SetIfNotExists", key, insert))

    def set_if_not_exists_fenced(
        self, key: str, value: ValueLike, ttl: int | None = None, *, request_id: str | None = None
    ) -> int | None:
        key, data, ttl = check_key(key), to_bytes(value), check_optional_ttl(ttl)

        def insert(now: int) -> int:
            with self._table.transaction() if request_id is None else contextlib.nullcontext():
                if not self._table.insert_if_absent(key, data, None if ttl is None else now + ttl * 1000, now):
                    return 0
                return self._table.next_fence(key)

        return self._once(request_id, "SetIfNotExistsFenced", key, insert) or None

    def delete(self, key: str, *, request_id: str | None = None) -> None:
        key = check_key(key)
        if not self._once(request_id, "Delete", key, lambda now: int(self._table.remove(key, now))):
            raise KVNotFoundError(key)

    def delete_if_value_matches(self, key: str, value: ValueLike, *, request_id: str | None = None) -> bool:
        key, data = check_key(key), to_bytes(value)
        removed = self._once(
            request_id, "DeleteIfValueMatches", key, lambda now: int(self._table.remove(key, now, data))
        )
        return bool(removed)

    def exists(self, key: str) -> bool:
        key = check_key(key)
        with self._lock:
            return self._table.lookup(key, self._now()) is not None

    def list_keys(self, prefix: str = "", *, limit: int = DEFAULT_PAGE_LIMIT, after: str | None = None) -> KVKeyPage:
        prefix, limit = check_prefix(prefix, field="prefix"), check_limit(limit)
        if after is not None:
            after = check_prefix(after, field="after")
        # Start at the prefix itself, or just past `after` if that is further on;
        # keys sharing the prefix are contiguous, so stop at the first that does not.
        start, inclusive = (after, False) if after is not None and after >= prefix else (prefix, True)
        with self._lock, contextlib.closing(self._table.keys_from(start, inclusive, self._now())) as keys:
            page = list(itertools.islice(itertools.takewhile(lambda k: k.startswith(prefix), keys), limit + 1))
        if len(page) > limit:
            return KVKeyPage(tuple(page[:limit]), page[limit - 1])
        return KVKeyPage(tuple(page), None)

    def get_ttl(self, key: str) -> int | None:
        key = check_key(key)
        with self._lock:
            now = self._now()
            row = self._table.lookup(key, now)
        if row is None:
            raise KVNotFoundError(key)
        expires_at = row[1]
        if expires_at is None:
            return None
        return max(1, -(-(expires_at - now) // 1000))

    def expire(
        self, key: str, ttl: int | None, *, if_value: ValueLike | None = None, request_id: str | None = None
    ) -> bool:
        key, ttl = check_key(key), check_optional_ttl(ttl)
        expected = None if if_value is None else to_bytes(if_value, field="if_value")

        def change(now: int) -> int:
            return int(self._table.set_expiry(key, None if ttl is None else now + ttl * 1000, now, expected))

        return bool(self._once(request_id, "Expire", key, change))

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Hold the lock for the whole block and commit its writes once (each
        conditional write inside still rolls back alone, via a savepoint)."""
        with self._lock, self._table.transaction():
            yield

    def sweep_expired(self) -> int:
        """Delete every expired row, a batch per lock hold; return how many."""
        total = 0
        while True:
            with self._lock:
                if self._closed:
                    return total
                removed = self._table.sweep(self._now(), SWEEP_BATCH)
                self.swept_total += removed
            total += removed
            if removed < SWEEP_BATCH:
                return total
            time.sleep(SWEEP_PAUSE)  # locks are not fair: step aside so waiting calls get in

    def count(self) -> int:
        """Rows held, including expired ones the sweeper has not reached yet."""
        with self._lock:
            return self._table.count()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.stop()
        with self._lock:
            if not self._closed:
                self._closed = True
                self._table.close()


class _Sweeper:
    """Calls `sweep_expired()` every interval on a daemon thread.

    It holds the adapter weakly, so an adapter nobody closed can still be
    collected (and its thread then ends).
    """

    def __init__(self, adapter: PythonAdapter, interval: float) -> None:
        if not interval > 0:
            raise ValueError(f"sweep_interval must be > 0 seconds or None, not {interval!r}")
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(weakref.ref(adapter), interval, self._stopped), name="kvgrpc-sweeper", daemon=True
        )
        self._thread.start()

    @staticmethod
    def _run(ref: weakref.ref[PythonAdapter], interval: float, stopped: threading.Event) -> None:
        while not stopped.wait(interval):
            adapter = ref()
            if adapter is None:
                return
            try:
                removed = adapter.sweep_expired()
            except Exception:
                log.exception("sweeping expired keys failed; will try again in %ss", interval)
            else:
                if removed:
                    log.debug("swept %d expired keys", removed)
            del adapter

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
