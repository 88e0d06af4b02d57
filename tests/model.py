"""A deliberately simple in-memory model of the key/value contract.

The property tests (tests/test_property.py) run random operations against a
real server and against this model, and compare every answer. It shares no
code with kvgrpc: a bug copied into both would hide itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


def as_bytes(value: bytes | bytearray | memoryview | str) -> bytes:
    """What the store keeps for a value: str as UTF-8, bytes-likes as their bytes."""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


@dataclass
class Entry:
    value: bytes
    ttl: int | None
    ttl_set_at: float  # time.monotonic() when the TTL was last given (before the call was sent)


class KVModel:
    """Live keys only: tests use TTLs far longer than a run, so nothing expires."""

    def __init__(self) -> None:
        self.rows: dict[str, Entry] = {}

    def set(self, key: str, value: bytes, ttl: int | None, now: float) -> None:
        self.rows[key] = Entry(value, ttl, now)

    def set_if_not_exists(self, key: str, value: bytes, ttl: int | None, now: float) -> bool:
        if key in self.rows:
            return False
        self.rows[key] = Entry(value, ttl, now)
        return True

    def get(self, key: str) -> bytes | None:
        entry = self.rows.get(key)
        return None if entry is None else entry.value

    def delete(self, key: str) -> bool:
        return self.rows.pop(key, None) is not None

    def delete_if_value_matches(self, key: str, value: bytes) -> bool:
        entry = self.rows.get(key)
        if entry is None or entry.value != value:
            return False
        del self.rows[key]
        return True

    def exists(self, key: str) -> bool:
        return key in self.rows

    def list_keys(self, prefix: str, limit: int, after: str | None) -> tuple[tuple[str, ...], str | None]:
        """Matching keys in code point order (Python's str order), strictly
        after `after`; next_after is the page's last key when more remain."""
        matching = sorted(k for k in self.rows if k.startswith(prefix) and (after is None or k > after))
        page = tuple(matching[:limit])
        return page, (page[-1] if len(matching) > limit else None)

    def expire(self, key: str, ttl: int | None, if_value: bytes | None, now: float) -> bool:
        entry = self.rows.get(key)
        if entry is None or (if_value is not None and entry.value != if_value):
            return False
        entry.ttl, entry.ttl_set_at = ttl, now
        return True

    def ttl_bounds(self, key: str, slack: float = 5.0) -> tuple[int, int] | None:
        """The range get_ttl may answer for `key`: None if it never expires.

        Seconds left are rounded up, so at most the TTL given; at least that
        minus the time since it was given (plus slack for clock granularity).
        """
        entry = self.rows[key]
        if entry.ttl is None:
            return None
        elapsed = time.monotonic() - entry.ttl_set_at
        return max(1, int(entry.ttl - elapsed - slack)), entry.ttl
