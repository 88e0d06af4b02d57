"""Redis store URLs (`kvgrpc.server.stores`) and what an unreachable Redis does:
KVUnavailableError at once, never an internal-looking error, never a password."""

from __future__ import annotations

import time

import pytest
import redis

from kvgrpc.adapters import RedisAdapter
from kvgrpc.ports import KVUnavailableError
from kvgrpc.server.stores import REDIS_CONNECT_TIMEOUT, REDIS_SOCKET_TIMEOUT, StoreURLError, open_store, redact
from redisproc import free_port

SECRET = "s3cr%40t"  # percent-encoded "s3cr@t"


def opened(url: str) -> RedisAdapter:
    store = open_store(url, sweep_interval=None)
    assert isinstance(store, RedisAdapter)
    return store


def connection_kwargs(store: RedisAdapter) -> dict:
    client = store.client
    assert isinstance(client, redis.Redis)
    return client.connection_pool.connection_kwargs


@pytest.mark.parametrize(
    ("url", "host", "port", "db", "prefix"),
    [
        ("redis://cache", "cache", 6379, 0, ""),
        ("redis://cache:6380", "cache", 6380, 0, ""),
        ("redis://cache:6380/", "cache", 6380, 0, ""),
        ("redis://10.0.0.7:6379/3", "10.0.0.7", 6379, 3, ""),
        ("redis://[::1]:7000/1?prefix=tenant-a:", "::1", 7000, 1, "tenant-a:"),
        ("redis://cache/0?prefix=t%2A%3F%5B%5D%5C%00%C3%A9:", "cache", 6379, 0, "t*?[]\\\x00é:"),
        ("REDIS://cache", "cache", 6379, 0, ""),
    ],
)
def test_redis_urls_open_lazily(url, host, port, db, prefix):
    with opened(url) as store:
        kwargs = connection_kwargs(store)
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == (host, port, db)
        assert store.prefix == prefix
        assert kwargs["socket_connect_timeout"] == REDIS_CONNECT_TIMEOUT
        assert kwargs["socket_timeout"] == REDIS_SOCKET_TIMEOUT
        assert kwargs["retry"].get_retries() == 0


def test_credentials_are_percent_decoded():
    with opened(f"redis://app:{SECRET}@cache:6379/0") as store:
        kwargs = connection_kwargs(store)
        assert (kwargs["username"], kwargs["password"]) == ("app", "s3cr@t")
    with opened(f"redis://:{SECRET}@cache") as store:
        kwargs = connection_kwargs(store)
        assert (kwargs["username"], kwargs["password"]) == (None, "s3cr@t")


def test_rediss_uses_tls():
    with opened("rediss://cache:6380/0") as store, opened("redis://cache:6380/0") as plain:
        assert issubclass(store.client.connection_pool.connection_class, redis.SSLConnection)
        assert not issubclass(plain.client.connection_pool.connection_class, redis.SSLConnection)


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("redis://", "missing or bad host"),
        ("redis://:6379", "missing or bad host"),
        ("redis://cache:port", "bad port"),
        ("redis://cache:0", "bad port"),
        ("redis://cache:70000", "bad port"),
        ("redis://::1:6379", "IPv6"),
        ("redis://[::1:6379", "IPv6"),
        ("redis://cache/db0", "database number"),
        ("redis://cache/0/1", "database number"),
        ("redis://a:1,b:2", "redis+cluster://"),
        ("redis://cache?db=1", "unknown Redis option(s) ['db']"),
        ("redis://cache?prefix=a&prefix=b", "more than once"),
        ("redis://cache?prefix", "malformed options"),
        ("redis://cache?prefix=%ff", "malformed options"),
        ("redis://cache?prefix=%ED%B2%80", "malformed options"),
        ("redis://cache#frag", "fragment"),
        (f"redis://{SECRET}@cache", "user:password@"),
        ("redis+cluster://a:1,b:2/1", "only database 0"),
        ("redis+cluster://a:1,,b:2", "missing or bad host"),
        ("redis+cluster://", "missing or bad host"),
    ],
)
def test_malformed_redis_urls_say_what_to_fix(url, fix):
    with pytest.raises(StoreURLError) as info:
        open_store(url if "@" in url else url.replace("cache", f"app:{SECRET}@cache", 1), sweep_interval=None)
    assert fix in str(info.value)
    assert "s3cr" not in str(info.value)


def test_unknown_scheme_lists_the_redis_forms():
    with pytest.raises(StoreURLError, match=r"redis://host:port/db.*redis\+cluster://"):
        open_store(f"memcached://app:{SECRET}@cache", sweep_interval=None)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis+cluster://u:pw@a:1,b:2?prefix=p", "redis+cluster://u:***@a:1,b:2?prefix=p"),
        ("redis://pw@cache:6379", "redis://***@cache:6379"),
        ("redis://[::1:6379", "redis://[::1:6379"),
    ],
)
def test_redact_never_raises_and_hides_passwords(url, shown):
    assert redact(url) == shown
    assert "pw" not in redact(url)


def test_unreachable_cluster_fails_at_start_without_the_password():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(StoreURLError) as info:
        open_store(f"redis+cluster://app:{SECRET}@127.0.0.1:{port}", sweep_interval=None)
    assert time.monotonic() - started < 5
    assert "cannot reach the Redis cluster" in str(info.value)
    assert "s3cr" not in str(info.value)


def test_unreachable_redis_is_unavailable_at_once():
    port = free_port()  # nothing listens there
    with opened(f"redis://app:{SECRET}@127.0.0.1:{port}/0") as store:
        for call in (
            store.ping,
            lambda: store.get("k"),
            lambda: store.set("k", b"v"),
            lambda: store.set_if_not_exists("k", b"v"),
            lambda: store.delete_if_value_matches("k", b"v"),
            lambda: store.expire("k", 5),
            lambda: store.list_keys(""),
            lambda: store.get_ttl("k"),
        ):
            started = time.monotonic()
            with pytest.raises(KVUnavailableError) as info:
                call()
            assert time.monotonic() - started < 1.0, "no retries, no backoff"
            assert str(info.value).startswith("Redis unreachable: ")
            assert str(port) in str(info.value)
            assert "s3cr" not in str(info.value)
