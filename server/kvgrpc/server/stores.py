"""Store URLs: which adapter the server hosts.

    memory://                     in memory, gone when the server stops
    sqlite:///relative/path.db    SQLite file relative to the working directory
    sqlite:////absolute/path.db   SQLite file at an absolute path

SQLite URLs accept query options `journal_mode` (default WAL),
`busy_timeout_ms` (default 5000) and `synchronous` (default NORMAL).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit, urlunsplit

from kvgrpc.adapters import PythonAdapter
from kvgrpc.ports import IKeyValueAdapter

_SQLITE_OPTIONS = {"journal_mode", "busy_timeout_ms", "synchronous"}


def redact(url: str) -> str:
    """The URL with any password replaced, fit for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class StoreURLError(ValueError):
    """A store URL that names no store we can open."""


def open_store(url: str, *, sweep_interval: float | None) -> IKeyValueAdapter:
    """Open the adapter a store URL names."""
    parts = urlsplit(url)
    if parts.scheme == "memory":
        if parts.netloc or parts.path or parts.query:
            raise StoreURLError(f"memory store URL takes no path or options: use 'memory://', not {url!r}")
        return PythonAdapter(sweep_interval=sweep_interval)
    if parts.scheme == "sqlite":
        if parts.netloc or not url.startswith("sqlite:///") or parts.path in ("", "/"):
            raise StoreURLError(
                f"bad SQLite URL {url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        options = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)))
        unknown = set(options) - _SQLITE_OPTIONS
        if unknown:
            raise StoreURLError(
                f"unknown SQLite option(s) {sorted(unknown)} in {url!r}; known: {sorted(_SQLITE_OPTIONS)}"
            )
        try:
            busy_timeout_ms = int(options.get("busy_timeout_ms", "5000"))
        except ValueError:
            raise StoreURLError(f"busy_timeout_ms must be a whole number of milliseconds in {url!r}") from None
        path = parts.path[1:]  # sqlite:///rel -> "rel"; sqlite:////abs -> "/abs"
        try:
            return PythonAdapter(
                path,
                journal_mode=options.get("journal_mode", "WAL"),
                busy_timeout_ms=busy_timeout_ms,
                synchronous=options.get("synchronous", "NORMAL"),
                sweep_interval=sweep_interval,
            )
        except ValueError as err:
            raise StoreURLError(f"{url}: {err}") from None
    raise StoreURLError(
        f"unknown store {url!r}: use memory:// or sqlite:///path (relative) or sqlite:////path (absolute)"
    )
