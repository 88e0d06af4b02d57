"""KeyValueClient behaviour against scripted in-process servers: which calls
gRPC retries, how each status code surfaces, and the channel's life cycle."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from kvgrpc.client import KeyValueClient
from kvgrpc.ports import (
    KVDeadlineExceededError,
    KVError,
    KVInvalidArgumentError,
    KVNotFoundError,
    KVTransportError,
    KVUnavailableError,
)
from kvgrpc.v1 import keyvalue_pb2 as pb
from kvgrpc.v1 import keyvalue_pb2_grpc


class ScriptedServicer(keyvalue_pb2_grpc.KeyValueServicer):
    """Fails each method's first `failures` calls with `code`, then answers."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.request_ids: dict[str, list[str]] = defaultdict(list)
        self.failures = 0
        self.code = grpc.StatusCode.UNAVAILABLE
        self.delay = 0.0
        self.slow_calls = 0  # this many first calls sleep 1 s

    def _answer(self, method: str, context: grpc.ServicerContext, response, request=None):
        self.calls[method] += 1
        if request is not None and request.HasField("request_id"):
            self.request_ids[method].append(request.request_id)
        time.sleep(self.delay if self.calls[method] > self.slow_calls else 1.0)
        if self.calls[method] <= self.failures:
            context.abort(self.code, f"scripted {self.code.name}")
        return response

    def Get(self, request, context):
        return self._answer("Get", context, pb.GetResponse(value=b"v"))

    def Set(self, request, context):
        return self._answer("Set", context, pb.SetResponse())

    def SetIfNotExists(self, request, context):
        return self._answer("SetIfNotExists", context, pb.SetIfNotExistsResponse(inserted=True), request)

    def DeleteIfValueMatches(self, request, context):
        return self._answer("DeleteIfValueMatches", context, pb.DeleteIfValueMatchesResponse(deleted=True), request)

    def Delete(self, request, context):
        return self._answer("Delete", context, pb.DeleteResponse(), request)

    def Expire(self, request, context):
        return self._answer("Expire", context, pb.ExpireResponse(updated=True), request)


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedServicer, str]]:
    servicer = ScriptedServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    keyvalue_pb2_grpc.add_KeyValueServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        server.stop(None)


@pytest.mark.parametrize(("method", "call"), [("Get", lambda kv: kv.get("k")), ("Set", lambda kv: kv.set("k", b"v"))])
def test_safe_calls_are_retried_on_unavailable(scripted, method, call):
    servicer, target = scripted
    servicer.failures = 2
    with KeyValueClient(target) as kv:
        call(kv)
    assert servicer.calls[method] == 3


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("SetIfNotExists", lambda kv: kv.set_if_not_exists("k", b"v")),
        ("DeleteIfValueMatches", lambda kv: kv.delete_if_value_matches("k", b"v")),
        ("Delete", lambda kv: kv.delete("k")),
        ("Expire", lambda kv: kv.expire("k", 5, if_value=b"v")),
    ],
)
def test_conditional_writes_are_retried_with_one_request_id(scripted, method, call):
    servicer, target = scripted
    servicer.failures = 2
    with KeyValueClient(target) as kv:
        call(kv)
    assert servicer.calls[method] == 3
    ids = servicer.request_ids[method]
    assert len(ids) == 3 and len(set(ids)) == 1 and len(ids[0]) == 32  # one fresh id, sent every time


def test_conditional_write_is_resent_with_its_id_after_a_deadline(scripted):
    servicer, target = scripted
    servicer.slow_calls = 1  # the first attempt outlives its deadline
    with KeyValueClient(target, timeout=0.3) as kv:
        assert kv.set_if_not_exists("k", b"v") is True
    ids = servicer.request_ids["SetIfNotExists"]
    assert len(ids) == 2 and ids[0] == ids[1]


def test_other_codes_are_not_retried(scripted):
    servicer, target = scripted
    servicer.failures, servicer.code = 1, grpc.StatusCode.INTERNAL
    with KeyValueClient(target) as kv, pytest.raises(KVError) as info:
        kv.get("k")
    assert servicer.calls["Get"] == 1
    assert info.value.code == "INTERNAL"
    assert not isinstance(info.value, KVTransportError)


@pytest.mark.parametrize(
    ("code", "exc_type", "also"),
    [
        (grpc.StatusCode.NOT_FOUND, KVNotFoundError, KVError),
        (grpc.StatusCode.INVALID_ARGUMENT, KVInvalidArgumentError, ValueError),
        (grpc.StatusCode.UNAVAILABLE, KVUnavailableError, ConnectionError),
        (grpc.StatusCode.PERMISSION_DENIED, KVError, KVError),
    ],
)
def test_status_codes_map_to_exceptions(scripted, code, exc_type, also):
    servicer, target = scripted
    servicer.failures, servicer.code = 99, code
    with KeyValueClient(target) as kv, pytest.raises(exc_type) as info:
        kv.set_if_not_exists("k", b"v")
    assert isinstance(info.value, also)
    assert info.value.code == code.name
    assert "scripted" in str(info.value)
    assert isinstance(info.value.__cause__, grpc.RpcError)


def test_deadline_is_a_timeout_error(scripted):
    servicer, target = scripted
    servicer.delay = 1.0
    with KeyValueClient(target, timeout=0.2) as kv, pytest.raises(KVDeadlineExceededError) as info:
        kv.get("k")
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, KVTransportError)


def test_unreachable_server_is_unavailable():
    with KeyValueClient("127.0.0.1:1", timeout=5) as kv, pytest.raises(KVUnavailableError) as info:
        kv.get("k")
    assert isinstance(info.value, ConnectionError)


def test_bad_arguments_fail_before_any_call(scripted):
    servicer, target = scripted
    with KeyValueClient(target) as kv:
        with pytest.raises(ValueError):
            kv.set("k", b"v", ttl=0)
        with pytest.raises(TypeError):
            kv.set("k", 5)
        with pytest.raises(ValueError):
            kv.get("")
    assert sum(servicer.calls.values()) == 0


def test_channel_is_lazy_shared_and_closed(scripted):
    _servicer, target = scripted
    kv = KeyValueClient(target)
    assert kv._channel is None
    kv.get("k")
    channel = kv._channel
    kv.get("k")
    assert kv._channel is channel
    kv.close()
    kv.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        kv.get("k")


@pytest.mark.parametrize("kwargs", [{"target": ""}, {"target": "x", "timeout": 0}, {"target": "x", "timeout": -1}])
def test_constructor_validates(kwargs):
    with pytest.raises(ValueError):
        KeyValueClient(**kwargs)


def test_timeout_none_means_no_deadline(scripted):
    _servicer, target = scripted
    with KeyValueClient(target, timeout=None) as kv:
        assert kv.get("k") == b"v"


# -- several servers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("127.0.0.1:1", "127.0.0.1:1"),
        ("dns:///kv.internal:50051", "dns:///kv.internal:50051"),
        (["127.0.0.1:1"], "127.0.0.1:1"),
        (["127.0.0.1:1", "10.0.0.2:2"], "ipv4:127.0.0.1:1,10.0.0.2:2"),
        (["[::1]:1", "[fe80::1]:2"], "ipv6:[::1]:1,[fe80::1]:2"),
    ],
)
def test_channel_target(target, expected):
    assert KeyValueClient(target).target == expected


@pytest.mark.parametrize(
    "target", [[], [""], ["kv-a:1", "kv-b:2"], ["127.0.0.1:1", "[::1]:2"], ["127.0.0.1", "127.0.0.2:1"]], ids=repr
)
def test_bad_address_lists_are_value_errors(target):
    with pytest.raises(ValueError):
        KeyValueClient(target)


def test_round_robin_spreads_calls_and_skips_a_dead_server(tmp_path):
    from serverproc import ServerProcess

    store = f"sqlite:///{tmp_path}/kv.sqlite3"
    with (
        ServerProcess(store, "--metrics-listen", "127.0.0.1:0") as a,
        ServerProcess(store, "--metrics-listen", "127.0.0.1:0") as b,
        KeyValueClient([a.target, b.target]) as kv,
    ):
        for i in range(40):
            kv.set(f"rr/{i}", b"v")
        handled = [_sets_handled(server) for server in (a, b)]
        assert sum(handled) == 40 and min(handled) >= 10, handled  # both took a share
        a.kill()
        for i in range(40, 80):
            kv.set(f"rr/{i}", b"v")  # safe calls carry on through b
            assert kv.get(f"rr/{i}") == b"v"
        assert len(kv.list_keys("rr/").keys) == 80


def _sets_handled(server) -> int:
    return int(server.metrics().get(("kvgrpc_rpcs_total", (("code", "OK"), ("method", "Set"))), 0))
