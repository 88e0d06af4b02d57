"""Redis stops under a running `kvgrpc serve`: calls fail UNAVAILABLE and
health goes NOT_SERVING; Redis comes back: full service and SERVING return,
with the same server process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from grpc_health.v1 import health_pb2

from contract import wait_until
from kvgrpc.client import KeyValueClient
from kvgrpc.client.channel import SERVICE
from kvgrpc.ports import KVUnavailableError
from redisproc import RedisProcess
from serverproc import ServerProcess

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def redis_proc(tmp_path) -> Iterator[RedisProcess]:
    with RedisProcess(tmp_path / "redis") as server:
        yield server


def health(server: ServerProcess) -> tuple[int, int]:
    return server.health(""), server.health(SERVICE)


def test_redis_outage_is_unavailable_then_service_returns(redis_proc):
    with (
        ServerProcess(redis_proc.url, "--health-interval", "0.2") as server,
        KeyValueClient(server.target, timeout=5) as kv,
    ):
        assert server.proc is not None
        pid = server.proc.pid
        kv.set("before", b"1")
        assert health(server) == (SERVING, SERVING)

        redis_proc.stop()
        wait_until(lambda: health(server) == (NOT_SERVING, NOT_SERVING), timeout=5)
        calls = {
            "get": lambda: kv.get("before"),
            "set": lambda: kv.set("k", b"v", ttl=5),
            "set_if_not_exists": lambda: kv.set_if_not_exists("k", b"v"),
            "delete": lambda: kv.delete("k"),
            "delete_if_value_matches": lambda: kv.delete_if_value_matches("k", b"v"),
            "exists": lambda: kv.exists("k"),
            "list_keys": lambda: kv.list_keys(""),
            "get_ttl": lambda: kv.get_ttl("k"),
            "expire": lambda: kv.expire("k", 5, if_value=b"v"),
        }
        for name, call in calls.items():
            with pytest.raises(KVUnavailableError) as info:
                call()
            assert info.value.code == "UNAVAILABLE", name
            assert info.value.reason == "STORE_UNAVAILABLE", name
            assert "Redis unreachable" in str(info.value), name

        redis_proc.start()  # same port, empty (nothing is persisted)
        wait_until(lambda: health(server) == (SERVING, SERVING), timeout=5)
        kv.set("after", b"2", ttl=60)
        assert kv.get("after") == b"2"
        assert not kv.exists("before")
        with kv.lock("outage/lock", ttl=5) as held:
            assert kv.get("outage/lock") == held.token
        assert kv.list_keys("").keys == ("after",)
        assert server.proc.pid == pid and server.proc.poll() is None

    log = server.log
    assert "store unreachable: NOT_SERVING" in log and "store reachable: SERVING" in log
    assert "INTERNAL" not in log and "failed unexpectedly" not in log
