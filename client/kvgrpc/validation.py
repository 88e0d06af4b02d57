"""The contract's rules for keys, values, TTLs and page sizes, in one place.

Adapters, the client and the server all check input with these functions, so
a bad argument gets the same error whichever implementation sees it first.
"""

from __future__ import annotations

import math

from kvgrpc.errors import KVInvalidArgumentError

__all__ = [
    "DEFAULT_PAGE_LIMIT",
    "MAX_PAGE_LIMIT",
    "MAX_TTL_SECONDS",
    "ValueLike",
    "check_key",
    "check_limit",
    "check_optional_ttl",
    "check_positive_number",
    "check_prefix",
    "check_request_id",
    "check_ttl",
    "to_bytes",
]

ValueLike = bytes | bytearray | memoryview | str

DEFAULT_PAGE_LIMIT = 100
MAX_PAGE_LIMIT = 1000
MAX_TTL_SECONDS = 315_360_000  # ten years; longer-lived keys should not expire at all


def _invalid(message: str, reason: str, field: str) -> KVInvalidArgumentError:
    return KVInvalidArgumentError(message, reason=reason, field=field)


def check_key(key: object, *, field: str = "key") -> str:
    """Return `key` if it is a non-empty string that UTF-8 can encode."""
    if not isinstance(key, str):
        raise TypeError(f"{field} must be a str, not {type(key).__name__}")
    if not key:
        raise _invalid(f"{field} must not be empty", "INVALID_KEY", field)
    _check_encodable(key, field, "INVALID_KEY")
    return key


def check_prefix(value: object, *, field: str) -> str:
    """Return `value` if it is a string (possibly empty) that UTF-8 can encode."""
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a str, not {type(value).__name__}")
    _check_encodable(value, field, "INVALID_ARGUMENT")
    return value


def _check_encodable(text: str, field: str, reason: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise _invalid(f"{field} is not valid Unicode (lone surrogate at index {err.start})", reason, field) from None


def to_bytes(value: object, *, field: str = "value") -> bytes:
    """Normalise a value: `str` as UTF-8, bytes-like as its bytes, else TypeError."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        _check_encodable(value, field, "INVALID_VALUE")
        return value.encode("utf-8")
    raise TypeError(f"{field} must be bytes, bytearray, memoryview or str, not {type(value).__name__}")


def check_ttl(ttl: object, *, field: str = "ttl") -> int:
    """Return `ttl` if it is a whole number of seconds in 1..MAX_TTL_SECONDS."""
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise _invalid(f"{field} must be a whole number of seconds, not {type(ttl).__name__}", "INVALID_TTL", field)
    if not 0 < ttl <= MAX_TTL_SECONDS:
        raise _invalid(
            f"{field} must be between 1 and {MAX_TTL_SECONDS} seconds (got {ttl});"
            " use no TTL for keys that never expire",
            "INVALID_TTL",
            field,
        )
    return ttl


def check_optional_ttl(ttl: object, *, field: str = "ttl") -> int | None:
    """Like `check_ttl`, but None (never expires) is allowed."""
    return None if ttl is None else check_ttl(ttl, field=field)


def check_limit(limit: object, *, field: str = "limit") -> int:
    """Return `limit` if it is a page size in 1..MAX_PAGE_LIMIT."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_LIMIT:
        raise _invalid(
            f"{field} must be a whole number from 1 to {MAX_PAGE_LIMIT} (got {limit!r})", "INVALID_LIMIT", field
        )
    return limit


MAX_REQUEST_ID_LENGTH = 128


def check_request_id(request_id: object, *, field: str = "request_id") -> str | None:
    """Return `request_id` if it is None or 1..128 printable characters."""
    if request_id is None:
        return None
    if (
        not isinstance(request_id, str)
        or not 0 < len(request_id) <= MAX_REQUEST_ID_LENGTH
        or not request_id.isprintable()
    ):
        raise _invalid(
            f"{field} must be 1 to {MAX_REQUEST_ID_LENGTH} printable characters, e.g. a UUID (got {request_id!r:.40})",
            "INVALID_REQUEST_ID",
            field,
        )
    _check_encodable(request_id, field, "INVALID_REQUEST_ID")
    return request_id


def check_positive_number(value: object, *, field: str) -> float:
    """Return `value` if it is a finite real number greater than zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise _invalid(f"{field} must be a number of seconds greater than 0 (got {value!r})", "INVALID_ARGUMENT", field)
    return float(value)
