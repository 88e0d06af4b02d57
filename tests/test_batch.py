"""The Batch RPC and KeyValueClient.pipeline(): many operations, one call,
each with its own result or error and its own atomicity."""

from __future__ import annotations

import threading
import uuid

import grpc
import pytest

from kvgrpc.client import KeyValueClient
from kvgrpc.ports import KVInvalidArgumentError, KVNotFoundError
from kvgrpc.v1 import keyvalue_pb2 as pb
from kvgrpc.v1.keyvalue_pb2_grpc import KeyValueStub
from serverproc import ServerProcess


@pytest.fixture(params=["memory_server", "sqlite_server"])
def server(request) -> ServerProcess:
    return request.getfixturevalue(request.param)


@pytest.fixture
def ns() -> str:
    return uuid.uuid4().hex[:8] + "/"


def test_pipeline_results_match_single_calls(server, ns):
    with KeyValueClient(server.target) as kv, kv.pipeline() as p:
        p.set(ns + "a", b"1", ttl=60).get(ns + "a").exists(ns + "a").get_ttl(ns + "a")
        p.set_if_not_exists(ns + "a", b"2").set_if_not_exists(ns + "b", b"x")
        p.delete_if_value_matches(ns + "b", b"nope").delete_if_value_matches(ns + "b", b"x")
        p.expire(ns + "a", None).get_ttl(ns + "a").delete(ns + "a").exists(ns + "a")
        assert len(p) == 12
        assert p.execute() == [None, b"1", True, 60, False, True, False, True, True, None, None, False]
        assert len(p) == 0


def test_conditional_writes_keep_their_atomicity_inside_one_batch(server, ns):
    with KeyValueClient(server.target) as kv:
        p = kv.pipeline()
        for i in range(50):
            p.set_if_not_exists(ns + "lock", f"owner-{i}")
        results = p.execute()
        assert results == [True] + [False] * 49
        assert kv.get(ns + "lock") == b"owner-0"


def test_errors_come_back_per_operation(server, ns):
    with KeyValueClient(server.target) as kv:
        p = kv.pipeline().set(ns + "k", b"v").get(ns + "missing").delete(ns + "missing").get(ns + "k")
        results = p.execute(raise_on_error=False)
        assert results[0] is None and results[3] == b"v"
        assert isinstance(results[1], KVNotFoundError) and results[1].key == ns + "missing"
        assert results[1].code == "NOT_FOUND" and results[1].reason == "KEY_NOT_FOUND"
        assert isinstance(results[2], KVNotFoundError)
        p.set(ns + "k2", b"v").get(ns + "gone").set(ns + "k3", b"v")
        with pytest.raises(KVNotFoundError):
            p.execute()
        assert kv.get(ns + "k3") == b"v"  # the rest still ran


def test_request_ids_make_a_resent_batch_safe(server, ns):
    with KeyValueClient(server.target) as kv:
        for _ in range(2):  # the same batch twice: as if a retry followed a lost reply
            p = kv.pipeline()
            p.set_if_not_exists(ns + "s", b"v", request_id=ns + "r1")
            p.delete_if_value_matches(ns + "d", b"v", request_id=ns + "r2")
            assert p.execute() == [True, False]


def test_invalid_operations_are_rejected_one_by_one(server, ns):
    with grpc.insecure_channel(server.target) as channel:
        stub = KeyValueStub(channel)
        request = pb.BatchRequest(
            operations=[
                pb.BatchOperation(set=pb.SetRequest(key=ns + "ok", value=b"v")),
                pb.BatchOperation(),
                pb.BatchOperation(set=pb.SetRequest(key="", value=b"v")),
                pb.BatchOperation(set=pb.SetRequest(key=ns + "t", ttl_seconds=0)),
                pb.BatchOperation(get=pb.GetRequest(key=ns + "ok")),
            ]
        )
        results = stub.Batch(request, timeout=5).results
        assert [r.WhichOneof("result") for r in results] == ["set", "error", "error", "error", "get"]
        assert [r.error.reason for r in results[1:4]] == ["INVALID_ARGUMENT", "INVALID_KEY", "INVALID_TTL"]
        assert all(r.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] for r in results[1:4])
        assert results[4].get.value == b"v"


def test_more_than_1000_operations_is_invalid(server, ns):
    with grpc.insecure_channel(server.target) as channel:
        operations = [pb.BatchOperation(get=pb.GetRequest(key=ns + "k"))] * 1001
        with pytest.raises(grpc.RpcError) as info:
            KeyValueStub(channel).Batch(pb.BatchRequest(operations=operations), timeout=10)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "1000" in info.value.details()
    with KeyValueClient(server.target) as kv:
        p = kv.pipeline()
        for i in range(1000):
            p.exists(ns + str(i))
        with pytest.raises(ValueError, match="at most 1000"):
            p.exists(ns + "one-too-many")
        assert p.execute() == [False] * 1000


def test_pipeline_checks_arguments_before_sending(server):
    with KeyValueClient(server.target) as kv:
        p = kv.pipeline()
        with pytest.raises(KVInvalidArgumentError):
            p.set("", b"v")
        with pytest.raises(TypeError):
            p.set("k", 5)
        assert len(p) == 0 and p.execute() == []


def test_a_batch_of_writes_is_durable_when_acknowledged(tmp_path):
    """One commit for the whole batch, and the reply only after it."""
    store = f"sqlite:///{tmp_path}/kv.sqlite3"
    server = ServerProcess(store).start()
    try:
        with KeyValueClient(server.target) as kv:
            p = kv.pipeline()
            for i in range(500):
                p.set(f"b/{i:03d}", b"v")
            p.execute()
        server.proc.kill()  # SIGKILL straight after the acknowledgement
        server.proc.wait()
    finally:
        server.kill()
    with ServerProcess(store) as restarted, KeyValueClient(restarted.target) as kv:
        assert len(kv.list_keys("b/", limit=1000).keys) == 500


# -- coalescing: threads sharing one client share Batch calls -----------------------------------


@pytest.fixture(scope="module")
def metered() -> ServerProcess:
    with ServerProcess("memory://", "--metrics-listen", "127.0.0.1:0") as server:
        yield server


def _hammer(kv: KeyValueClient, ns: str, threads: int = 8, rounds: int = 40) -> list[BaseException]:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(rounds):
                key = f"{ns}{t}/{i}"
                kv.set(key, key)
                assert kv.get(key) == key.encode()
                with pytest.raises(KVNotFoundError) as info:
                    kv.get(key + "/missing")
                assert info.value.key == key + "/missing"
                assert kv.set_if_not_exists(key, b"again") is False
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return errors


def _batches(server: ServerProcess) -> float:
    return server.metrics().get(("kvgrpc_rpcs_total", (("code", "OK"), ("method", "Batch"))), 0.0)


def test_concurrent_calls_are_coalesced_into_batches(metered, ns):
    before = _batches(metered)
    with KeyValueClient(metered.target) as kv:
        assert _hammer(kv, ns) == []
        assert len(kv.list_keys(ns, limit=1000).keys) == 8 * 40
    assert _batches(metered) > before  # the calls really went out together


def test_coalescing_can_be_turned_off(metered, ns):
    before = _batches(metered)
    with KeyValueClient(metered.target, coalesce=False) as kv:
        assert _hammer(kv, ns, threads=4, rounds=10) == []
    assert _batches(metered) == before


def test_a_lone_caller_never_waits_for_a_batch(metered, ns):
    before = _batches(metered)
    with KeyValueClient(metered.target) as kv:
        for i in range(20):
            kv.set(f"{ns}{i}", b"v")
    assert _batches(metered) == before
