"""The key/value port: one interface and one error family for every store.

`IKeyValueAdapter` is the port a Python application codes against; the
in-process `kvgrpc.adapters.PythonAdapter` and the remote
`kvgrpc.client.KeyValueClient` both implement it with the same semantics, so
one can replace the other without touching the application.
"""

from __future__ import annotations

import abc
import contextlib
import random
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from kvgrpc.errors import (
    KVDeadlineExceededError,
    KVError,
    KVInvalidArgumentError,
    KVLockTimeoutError,
    KVNotFoundError,
    KVPermissionDeniedError,
    KVTransportError,
    KVUnauthenticatedError,
    KVUnavailableError,
)
from kvgrpc.validation import (
    DEFAULT_PAGE_LIMIT,
    ValueLike,
    check_positive_number,
    check_request_id,
    check_ttl,
)

_MAX_LOCK_BACKOFF = 1.0  # seconds; backoff grows from retry_delay up to this

__all__ = [
    "IKeyValueAdapter",
    "KVDeadlineExceededError",
    "KVError",
    "KVInvalidArgumentError",
    "KVKeyPage",
    "KVLock",
    "KVLockTimeoutError",
    "KVNotFoundError",
    "KVPermissionDeniedError",
    "KVTransportError",
    "KVUnauthenticatedError",
    "KVUnavailableError",
    "ValueLike",
    "new_request_id",
    "request_id_or_new",
]


@dataclass(frozen=True, slots=True)
class KVKeyPage:
    """One page of `list_keys`: the keys, and where the next page starts."""

    keys: tuple[str, ...]
    next_after: str | None


class KVLock:
    """A held lock: its key, the unique token stored as its value, and its
    fencing token, a number that grows with every acquisition of the key.

    Pass `fencing_token` along with every write the lock protects, so the
    system receiving them can refuse one from a holder whose lock expired
    and was taken by someone else (a higher number).
    """

    __slots__ = ("_adapter", "fencing_token", "key", "token", "ttl")

    def __init__(self, adapter: IKeyValueAdapter, key: str, token: bytes, ttl: int, fencing_token: int) -> None:
        self._adapter = adapter
        self.key = key
        self.token = token
        self.ttl = ttl
        self.fencing_token = fencing_token

    def renew(self, ttl: int | None = None) -> bool:
        """Extend the lock to `ttl` (default: the lock's ttl) seconds from now,
        only if we still hold it; False if it expired or was taken."""
        ttl = self.ttl if ttl is None else check_ttl(ttl)
        return self._adapter.expire(self.key, ttl, if_value=self.token, request_id=new_request_id())

    def __repr__(self) -> str:
        return f"KVLock(key={self.key!r}, fencing_token={self.fencing_token})"


def new_request_id() -> str:
    """A fresh id for one logical conditional write (retries reuse it)."""
    return uuid.uuid4().hex


def request_id_or_new(request_id: str | None) -> str:
    """The caller's request id (checked), or a fresh one."""
    return new_request_id() if request_id is None else check_request_id(request_id)  # type: ignore[return-value]


class IKeyValueAdapter(abc.ABC):
    """A key/value store with TTLs and atomic conditional writes.

    Keys are non-empty `str`. Values are `bytes`; `str` is stored UTF-8
    encoded, `bytearray` and `memoryview` as their bytes, and anything else is
    a `TypeError`. TTLs are whole seconds greater than zero (`None`: never
    expires); anything else is a `ValueError`. An expired key is absent to
    every method.

    Conditional writes take an optional `request_id`: the store records the
    outcome of the first call with that id and answers a repeat of it (a
    retry after a lost reply) with the same outcome instead of writing again.
    """

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """Return the value of `key`; `KVNotFoundError` if absent or expired."""

    @abc.abstractmethod
    def set(self, key: str, value: ValueLike, ttl: int | None = None) -> None:
        """Store `value` under `key`, replacing any value and TTL it had."""

    @abc.abstractmethod
    def set_if_not_exists(
        self, key: str, value: ValueLike, ttl: int | None = None, *, request_id: str | None = None
    ) -> bool:
        """Store `value` only if `key` is absent; True if this call inserted it."""

    @abc.abstractmethod
    def set_if_not_exists_fenced(
        self, key: str, value: ValueLike, ttl: int | None = None, *, request_id: str | None = None
    ) -> int | None:
        """Like `set_if_not_exists`, but return the key's next fencing token
        (1, 2, ... strictly increasing per key) if inserted, None if not."""

    @abc.abstractmethod
    def delete(self, key: str, *, request_id: str | None = None) -> None:
        """Remove `key`; `KVNotFoundError` if absent or expired."""

    @abc.abstractmethod
    def delete_if_value_matches(self, key: str, value: ValueLike, *, request_id: str | None = None) -> bool:
        """Remove `key` only if it holds `value`; True if removed."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool:
        """Tell whether `key` is live."""

    @abc.abstractmethod
    def list_keys(self, prefix: str = "", *, limit: int = DEFAULT_PAGE_LIMIT, after: str | None = None) -> KVKeyPage:
        """Return up to `limit` (1..1000) live keys starting with `prefix`.

        Keys come in ascending code point order, strictly after `after`.
        `next_after` is the last key of the page when more may follow.
        """

    @abc.abstractmethod
    def get_ttl(self, key: str) -> int | None:
        """Return whole seconds left (rounded up, at least 1), None if `key`
        never expires; `KVNotFoundError` if absent or expired."""

    @abc.abstractmethod
    def expire(
        self, key: str, ttl: int | None, *, if_value: ValueLike | None = None, request_id: str | None = None
    ) -> bool:
        """Give live `key` a new TTL (None: never expires), only if it holds
        `if_value` when given. True if changed."""

    def close(self) -> None:  # noqa: B027 - optional hook, most adapters own something to release
        """Release what the adapter holds (connections, files, threads)."""

    def batch(self) -> contextlib.AbstractContextManager[object]:
        """Group the calls made inside a `with` block: a store may run them
        under one lock and commit them together (SQLite: one transaction).
        Each call keeps its own result and atomicity; the default does
        nothing special."""
        return contextlib.nullcontext()

    def __enter__(self) -> IKeyValueAdapter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def lock(
        self,
        key: str,
        *,
        ttl: int = 30,
        timeout: float = 10.0,
        retry_delay: float = 0.05,
    ) -> Iterator[KVLock]:
        """Hold `key` as a lock for the duration of a `with` block.

        The lock is a unique token stored with `set_if_not_exists`, so it
        expires after `ttl` seconds if its holder dies. While someone else
        holds it, retries back off exponentially with jitter from
        `retry_delay`; after `timeout` seconds, `KVLockTimeoutError`. Leaving
        the block releases the lock only if it still holds our token.

        The `KVLock` it yields carries a fencing token and can `renew()` the
        lock for long critical sections. Every acquisition attempt has its own
        request id, so a retried attempt whose first try landed still reports
        the lock as ours.
        """
        ttl = check_ttl(ttl, field="ttl")
        timeout = check_positive_number(timeout, field="timeout")
        retry_delay = check_positive_number(retry_delay, field="retry_delay")
        token = secrets.token_hex(16).encode()
        deadline = time.monotonic() + timeout
        delay, attempts = retry_delay, 0
        while True:
            attempts += 1
            fence = self.set_if_not_exists_fenced(key, token, ttl=ttl, request_id=new_request_id())
            if fence is not None:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KVLockTimeoutError(key, attempts, timeout)
            time.sleep(min(remaining, random.uniform(delay / 2, delay)))
            delay = min(delay * 2, max(retry_delay, _MAX_LOCK_BACKOFF))
        try:
            yield KVLock(self, key, token, ttl, fence)
        finally:
            self.delete_if_value_matches(key, token, request_id=new_request_id())
