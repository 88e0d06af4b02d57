"""The kvgrpc error family, shared by every adapter, the client and the server.

Server verdicts on a request (`KVNotFoundError`, `KVInvalidArgumentError`) are
kept apart from transport failures (`KVTransportError`), after which the
operation may or may not have happened.
"""

from __future__ import annotations

__all__ = [
    "KVDeadlineExceededError",
    "KVError",
    "KVInvalidArgumentError",
    "KVLockTimeoutError",
    "KVNotFoundError",
    "KVPermissionDeniedError",
    "KVTransportError",
    "KVUnauthenticatedError",
    "KVUnavailableError",
]


def shorten(key: str, limit: int = 64) -> str:
    """A key for a message: repr'd, and cut short if long (keys go up to
    4 KiB, and error messages travel in size-limited gRPC trailers)."""
    text = repr(key)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(key.encode('utf-8'))} bytes)"


class KVError(Exception):
    """Base of every error kvgrpc raises.

    Errors that crossed the wire keep the gRPC status code name (`code`) and
    the `google.rpc.ErrorInfo` reason (`reason`) the server attached.
    """

    code: str | None = None
    reason: str | None = None


class KVNotFoundError(KVError):
    """The key is absent or expired."""

    def __init__(self, key: str, message: str | None = None) -> None:
        super().__init__(message or f"key not found: {shorten(key)}")
        self.key = key


class KVInvalidArgumentError(KVError, ValueError):
    """A request broke a rule of the contract (empty key, bad TTL, ...)."""

    def __init__(self, message: str, *, reason: str = "INVALID_ARGUMENT", field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field


class KVUnauthenticatedError(KVError):
    """The call carried no bearer token, or one the server does not know."""


class KVPermissionDeniedError(KVError, PermissionError):
    """The token is valid but may not touch this key (outside its prefix)."""


class KVLockTimeoutError(KVError, TimeoutError):
    """`lock()` gave up: someone else held the key for the whole timeout."""

    def __init__(self, key: str, attempts: int, timeout: float) -> None:
        super().__init__(f"could not acquire lock {key!r} within {timeout}s ({attempts} attempts)")
        self.key = key
        self.attempts = attempts
        self.timeout = timeout


class KVTransportError(KVError):
    """The store could not be reached or did not answer in time.

    Unlike the other errors this is no verdict on the request: the operation
    may or may not have happened.
    """


class KVUnavailableError(KVTransportError, ConnectionError):
    """The server (or its store) is unreachable or shutting down."""


class KVDeadlineExceededError(KVTransportError, TimeoutError):
    """The call did not complete within its deadline."""
