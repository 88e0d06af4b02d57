"""The contract suite on Redis: `RedisAdapter` directly and `KeyValueClient`
through `kvgrpc serve --store redis://…`, on one Redis and on a 3-master
Redis Cluster (there with tenant prefixes, one full of glob characters, NUL
and non-ASCII); plus what only Redis has: tenant isolation, the raw key
layout, keys that are not UTF-8, every cluster node, bookkeeping keys.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from redis.crc import key_slot

from contract import KVContract, all_keys
from kvgrpc.adapters import RedisAdapter
from kvgrpc.adapters.redis import REQUEST_MEMORY_MS, _slot_tag
from kvgrpc.client import KeyValueClient
from kvgrpc.ports import IKeyValueAdapter, KVNotFoundError
from redisproc import RedisClusterProcesses, RedisProcess
from serverproc import ServerProcess

# Glob characters, a backslash, NUL and non-ASCII: each must be taken literally.
TRICKY_PREFIX = "tenant*?[x]\\\x00é😀:"


@pytest.fixture(scope="module")
def redis_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    with RedisProcess(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    with RedisClusterProcesses(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def redis_kv_server(redis_proc: RedisProcess) -> Iterator[ServerProcess]:
    # Database 1: the contract reuses fixed request ids, which are unique per store.
    with ServerProcess(redis_proc.url_for(db=1)) as server:
        yield server


@pytest.fixture(scope="module")
def cluster_kv_server(redis_cluster: RedisClusterProcesses) -> Iterator[ServerProcess]:
    with ServerProcess(redis_cluster.url + "?prefix=kv:") as server:
        yield server


class TestRedisAdapter(KVContract):
    @pytest.fixture
    def kv(self, redis_proc) -> Iterator[IKeyValueAdapter]:
        with RedisAdapter(redis_proc.client()) as adapter:
            yield adapter


class TestClientToRedisServer(KVContract):
    @pytest.fixture
    def kv(self, redis_kv_server) -> Iterator[IKeyValueAdapter]:
        with KeyValueClient(redis_kv_server.target) as client:
            yield client


class TestRedisClusterAdapterWithTrickyPrefix(KVContract):
    @pytest.fixture
    def kv(self, redis_cluster) -> Iterator[IKeyValueAdapter]:
        with RedisAdapter(redis_cluster.client(), prefix=TRICKY_PREFIX) as adapter:
            yield adapter


class TestClientToRedisClusterServer(KVContract):
    @pytest.fixture
    def kv(self, cluster_kv_server) -> Iterator[IKeyValueAdapter]:
        with KeyValueClient(cluster_kv_server.target) as client:
            yield client


# -- tenants -------------------------------------------------------------------------


@pytest.fixture
def tenants(redis_proc) -> Iterator[tuple[RedisAdapter, RedisAdapter]]:
    # Unescaped, the pattern for "a*:" would match every key of "ab:".
    with RedisAdapter(redis_proc.client(), prefix="a*:") as a, RedisAdapter(redis_proc.client(), prefix="ab:") as b:
        yield a, b


def test_tenants_on_one_redis_do_not_see_each_other(tenants, redis_proc):
    a, b = tenants
    a.set("shared-name", b"from a")
    b.set("shared-name", b"from b")
    b.set("only-b", b"b")
    assert a.get("shared-name") == b"from a"
    assert b.get("shared-name") == b"from b"
    assert not a.exists("only-b")
    with pytest.raises(KVNotFoundError):
        a.get("only-b")
    with pytest.raises(KVNotFoundError):
        a.delete("only-b")
    assert a.delete_if_value_matches("only-b", b"b") is False
    assert a.expire("only-b", 10) is False
    assert all_keys(a, "") == ["shared-name"]
    assert all_keys(b, "") == ["only-b", "shared-name"]
    a.delete("shared-name")
    assert b.get("shared-name") == b"from b"
    with contextlib.closing(redis_proc.client()) as raw:
        assert raw.get(b"ab:only-b") == b"b"
        assert raw.get(b"a*:shared-name") is None


def test_prefix_is_stored_in_front_of_every_key(redis_proc):
    with RedisAdapter(redis_proc.client(), prefix=TRICKY_PREFIX) as kv, contextlib.closing(redis_proc.client()) as raw:
        kv.set("k\x00é", b"v", ttl=100)
        assert raw.get(TRICKY_PREFIX.encode() + "k\x00é".encode()) == b"v"
        assert 99 <= raw.ttl(TRICKY_PREFIX.encode() + "k\x00é".encode()) <= 100
        assert kv.list_keys("k").keys == ("k\x00é",)


def test_keys_that_are_not_utf8_are_skipped(redis_proc):
    with RedisAdapter(redis_proc.client(), prefix="bin:") as kv, contextlib.closing(redis_proc.client()) as raw:
        raw.set(b"bin:\xff\xfe", b"x")
        raw.set(b"bin:ok\xc3", b"x")  # truncated UTF-8
        kv.set("ok", b"v")
        kv.set("\uffff", b"v")
        assert kv.list_keys("").keys == ("ok", "\uffff")
        assert kv.list_keys("", limit=1).keys == ("ok",)


def test_listing_starts_past_after_even_below_the_prefix(redis_proc):
    with RedisAdapter(redis_proc.client(), prefix="after:") as kv:
        for name in ("p1", "p2", "q1"):
            kv.set(name, b"")
        assert kv.list_keys("p", after="a").keys == ("p1", "p2")
        assert kv.list_keys("p", after="p1").keys == ("p2",)
        assert kv.list_keys("p", after="pz").keys == ()


def test_bad_tenant_prefix_and_decoding_client_are_rejected(redis_proc):
    with pytest.raises(ValueError), contextlib.closing(redis_proc.client()) as client:
        RedisAdapter(client, prefix="\udc80")
    with (
        pytest.raises(ValueError, match="decode_responses"),
        contextlib.closing(redis_proc.client(decode_responses=True)) as client,
    ):
        RedisAdapter(client)


# -- cluster -------------------------------------------------------------------------


def test_cluster_listing_covers_every_master(redis_cluster):
    with RedisAdapter(redis_cluster.client(), prefix="spread:") as kv:
        names = [f"key-{i:02d}" for i in range(60)]
        for name in names:
            kv.set(name, name)
        client = kv.client
        owners = {client.get_node_from_key(b"spread:" + n.encode()).name for n in names}
        assert len(owners) == 3, "the keys should land on all three masters"
        assert all_keys(kv, "", limit=7) == names
        assert kv.list_keys("key-5").keys == tuple(f"key-5{i}" for i in range(10))


def test_cluster_server_applies_its_prefix(redis_cluster, cluster_kv_server):
    with KeyValueClient(cluster_kv_server.target) as kv, contextlib.closing(redis_cluster.client()) as raw:
        kv.set("via-server", b"v")
        assert raw.get(b"kv:via-server") == b"v"
        assert raw.get(b"via-server") is None


# -- bookkeeping keys (request outcomes, fencing counters) ---------------------------


def test_bookkeeping_keys_are_never_listed_and_expire(redis_proc):
    with (
        RedisAdapter(redis_proc.client(db=3), prefix="book:") as kv,
        contextlib.closing(redis_proc.client(db=3)) as raw,
    ):
        assert kv.set_if_not_exists_fenced("lock", b"me", ttl=30, request_id="book-1") == 1
        assert kv.expire("lock", 60, if_value=b"me", request_id="book-2") is True
        kv.set("plain", b"v")
        kv.delete("plain", request_id="book-3")
        assert all_keys(kv, "") == ["lock"]
        everything = set(raw.scan_iter(match=b"*"))
        bookkeeping = everything - {b"book:lock"}
        assert len(bookkeeping) == 4  # one fencing counter, three request outcomes
        assert all(b"\xffkvgrpc\xffbook:\xff" in key for key in bookkeeping)
        outcomes = [key for key in bookkeeping if b"\xffreq\xff" in key]
        assert len(outcomes) == 3
        assert all(590_000 < raw.pttl(key) <= REQUEST_MEMORY_MS for key in outcomes)
        (fence,) = bookkeeping - set(outcomes)
        assert raw.pttl(fence) == -1 and raw.get(fence) == b"1"


def test_slot_tags_cover_every_cluster_slot():
    for slot in range(16384):
        assert key_slot(b"{" + _slot_tag(slot) + b"}\xffanything") == slot


@pytest.mark.parametrize("prefix", ["", "t{x}:", "t{:", "}{"])
@pytest.mark.parametrize("key", ["plain", "{user1}:job", "a}b", "{}", "é{"])
def test_bookkeeping_keys_share_their_data_keys_slot(redis_cluster, prefix, key):
    with RedisAdapter(redis_cluster.client(), prefix=prefix) as kv:
        data = kv._k(key)
        for aux in (kv._aux(b"fence", key.encode(), data), kv._aux(b"req", b"some-id", data)):
            assert key_slot(aux) == key_slot(data)
        # and the scripts accept them together (a cross-slot script would fail)
        assert kv.set_if_not_exists_fenced(key, b"v", request_id=f"slot-{prefix}-{key}") == 1
        assert kv.delete_if_value_matches(key, b"v", request_id=f"slot2-{prefix}-{key}") is True
