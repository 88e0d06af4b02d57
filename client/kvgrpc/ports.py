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
]


@dataclass(frozen=True, slots=True)
class KVKeyPage:
    """One page of `list_keys`: the keys, and where the next page starts."""

    keys: tuple[str, ...]
    next_after: str | None


@dataclass(frozen=True, slots=True)
class KVLock:
    """A held lock: its key and the unique token stored as its value."""

    key: str
    token: bytes


class IKeyValueAdapter(abc.ABC):
    """A key/value store with TTLs and atomic conditional writes.

    Keys are non-empty `str`. Values are `bytes`; `str` is stored UTF-8
    encoded, `bytearray` and `memoryview` as their bytes, and anything else is
    a `TypeError`. TTLs are whole seconds greater than zero (`None`: never
    expires); anything else is a `ValueError`. An expired key is absent to
    every method.
    """

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """Return the value of `key`; `KVNotFoundError` if absent or expired."""

    @abc.abstractmethod
    def set(self, key: str, value: ValueLike, ttl: int | None = None) -> None:
        """Store `value` under `key`, replacing any value and TTL it had."""

    @abc.abstractmethod
    def set_if_not_exists(self, key: str, value: ValueLike, ttl: int | None = None) -> bool:
        """Store `value` only if `key` is absent; True if this call inserted it."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove `key`; `KVNotFoundError` if absent or expired."""

    @abc.abstractmethod
    def delete_if_value_matches(self, key: str, value: ValueLike) -> bool:
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
    def expire(self, key: str, ttl: int | None, *, if_value: ValueLike | None = None) -> bool:
        """Give live `key` a new TTL (None: never expires), only if it holds
        `if_value` when given. True if changed."""

    def close(self) -> None:  # noqa: B027 - optional hook, most adapters own something to release
        """Release what the adapter holds (connections, files, threads)."""

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
        """
        ttl = check_ttl(ttl, field="ttl")
        timeout = check_positive_number(timeout, field="timeout")
        retry_delay = check_positive_number(retry_delay, field="retry_delay")
        token = secrets.token_hex(16).encode()
        deadline = time.monotonic() + timeout
        delay, attempts = retry_delay, 0
        while True:
            attempts += 1
            if self.set_if_not_exists(key, token, ttl=ttl):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KVLockTimeoutError(key, attempts, timeout)
            time.sleep(min(remaining, random.uniform(delay / 2, delay)))
            delay = min(delay * 2, max(retry_delay, _MAX_LOCK_BACKOFF))
        try:
            yield KVLock(key, token)
        finally:
            self.delete_if_value_matches(key, token)
