"""The wire contract through raw generated stubs: status codes, ErrorInfo
details, malformed requests. What a client in any language sees."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from kvgrpc.adapters import PythonAdapter
from kvgrpc.server import ServerConfig, create_server
from kvgrpc.v1 import keyvalue_pb2 as pb
from kvgrpc.v1.keyvalue_pb2_grpc import KeyValueStub

Code = grpc.StatusCode


@pytest.fixture(scope="module")
def channel(memory_server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(memory_server.target) as channel:
        yield channel


@pytest.fixture(scope="module")
def stub(channel) -> KeyValueStub:
    return KeyValueStub(channel)


def error_of(call) -> tuple[grpc.StatusCode, str, error_details_pb2.ErrorInfo]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    err = info.value
    status = rpc_status.from_call(err)
    assert status is not None, "error carries no google.rpc.Status"
    details = [d for d in status.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert len(details) == 1, "error carries no ErrorInfo"
    error_info = error_details_pb2.ErrorInfo()
    details[0].Unpack(error_info)
    assert error_info.domain == "kvgrpc"
    return err.code(), err.details(), error_info


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("Get", pb.GetRequest(key="nope")),
        ("Delete", pb.DeleteRequest(key="nope")),
        ("GetTtl", pb.GetTtlRequest(key="nope")),
    ],
)
def test_missing_key_is_not_found_with_error_info(stub, method, request_):
    code, message, info = error_of(lambda: getattr(stub, method)(request_, timeout=5))
    assert code is Code.NOT_FOUND
    assert "nope" in message
    assert info.reason == "KEY_NOT_FOUND"
    assert info.metadata["key"] == "nope"


BAD_REQUESTS = [
    ("Get", pb.GetRequest(key=""), "INVALID_KEY", "key"),
    ("Set", pb.SetRequest(key="", value=b"v"), "INVALID_KEY", "key"),
    ("SetIfNotExists", pb.SetIfNotExistsRequest(key=""), "INVALID_KEY", "key"),
    ("Delete", pb.DeleteRequest(key=""), "INVALID_KEY", "key"),
    ("DeleteIfValueMatches", pb.DeleteIfValueMatchesRequest(key=""), "INVALID_KEY", "key"),
    ("Exists", pb.ExistsRequest(key=""), "INVALID_KEY", "key"),
    ("GetTtl", pb.GetTtlRequest(key=""), "INVALID_KEY", "key"),
    ("Expire", pb.ExpireRequest(key=""), "INVALID_KEY", "key"),
    ("Get", pb.GetRequest(key="k" * 4097), "KEY_TOO_LONG", "key"),
    ("Set", pb.SetRequest(key="é" * 2049, value=b"v"), "KEY_TOO_LONG", "key"),
    ("Set", pb.SetRequest(key="k", ttl_seconds=0), "INVALID_TTL", "ttl_seconds"),
    ("Set", pb.SetRequest(key="k", ttl_seconds=-5), "INVALID_TTL", "ttl_seconds"),
    ("Set", pb.SetRequest(key="k", ttl_seconds=2**62), "INVALID_TTL", "ttl_seconds"),
    ("SetIfNotExists", pb.SetIfNotExistsRequest(key="k", ttl_seconds=0), "INVALID_TTL", "ttl_seconds"),
    ("Expire", pb.ExpireRequest(key="k", ttl_seconds=-1), "INVALID_TTL", "ttl_seconds"),
    ("Set", pb.SetRequest(key="k", value=b"x" * (1024 * 1024 + 1)), "VALUE_TOO_LARGE", "value"),
    (
        "DeleteIfValueMatches",
        pb.DeleteIfValueMatchesRequest(key="k", value=b"x" * (1024 * 1024 + 1)),
        "VALUE_TOO_LARGE",
        "value",
    ),
    (
        "Expire",
        pb.ExpireRequest(key="k", ttl_seconds=5, if_value=b"x" * (1024 * 1024 + 1)),
        "VALUE_TOO_LARGE",
        "if_value",
    ),
    ("ListKeys", pb.ListKeysRequest(limit=-1), "INVALID_LIMIT", "limit"),
    ("ListKeys", pb.ListKeysRequest(limit=1001), "INVALID_LIMIT", "limit"),
    ("ListKeys", pb.ListKeysRequest(prefix="p" * 4097), "KEY_TOO_LONG", "prefix"),
    ("ListKeys", pb.ListKeysRequest(after="a" * 4097), "KEY_TOO_LONG", "after"),
]


@pytest.mark.parametrize(("method", "request_", "reason", "field"), BAD_REQUESTS, ids=lambda v: str(v)[:30])
def test_bad_request_is_invalid_argument_and_changes_nothing(stub, method, request_, reason, field):
    code, message, info = error_of(lambda: getattr(stub, method)(request_, timeout=5))
    assert code is Code.INVALID_ARGUMENT
    assert info.reason == reason
    assert info.metadata["field"] == field
    assert field in message  # the message names what to fix
    assert not stub.Exists(pb.ExistsRequest(key="k"), timeout=5).exists


def test_message_over_the_transport_limit_is_resource_exhausted(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.Set(pb.SetRequest(key="big", value=b"x" * (2 * 1024 * 1024)), timeout=10)
    assert info.value.code() is Code.RESOURCE_EXHAUSTED
    assert not stub.Exists(pb.ExistsRequest(key="big"), timeout=5).exists


def test_value_at_the_limit_is_accepted(stub):
    value = b"x" * (1024 * 1024)
    stub.Set(pb.SetRequest(key="at-limit", value=value), timeout=10)
    assert stub.Get(pb.GetRequest(key="at-limit"), timeout=10).value == value


def test_limit_zero_means_the_default_of_100(stub):
    for i in range(105):
        stub.Set(pb.SetRequest(key=f"limit0/{i:03d}"), timeout=5)
    response = stub.ListKeys(pb.ListKeysRequest(prefix="limit0/"), timeout=5)
    assert len(response.keys) == 100
    assert response.HasField("next_after")
    assert response.next_after == "limit0/099"


def test_optional_fields_distinguish_absent_from_zero(stub):
    stub.Set(pb.SetRequest(key="opt", value=b""), timeout=5)
    assert not stub.GetTtl(pb.GetTtlRequest(key="opt"), timeout=5).HasField("ttl_seconds")
    stub.Expire(pb.ExpireRequest(key="opt", ttl_seconds=30), timeout=5)
    assert stub.GetTtl(pb.GetTtlRequest(key="opt"), timeout=5).ttl_seconds == 30
    # An empty if_value is a condition ("holds the empty value"), not "no condition".
    assert stub.Expire(pb.ExpireRequest(key="opt", if_value=b""), timeout=5).updated
    stub.Set(pb.SetRequest(key="opt", value=b"x"), timeout=5)
    assert not stub.Expire(pb.ExpireRequest(key="opt", ttl_seconds=5, if_value=b""), timeout=5).updated
    last = stub.ListKeys(pb.ListKeysRequest(prefix="opt"), timeout=5)
    assert not last.HasField("next_after")


@pytest.mark.parametrize("method", ["Get", "Set", "SetIfNotExists", "Delete", "Exists", "GetTtl", "Expire"])
def test_invalid_utf8_key_is_invalid_argument_and_server_keeps_serving(channel, stub, method):
    raw = channel.unary_unary(f"/kvgrpc.v1.KeyValue/{method}")  # bytes in, bytes out
    code, message, info = error_of(lambda: raw(b"\x0a\x02\xff\xfe", timeout=5))  # field 1 (key) = ff fe
    assert code is Code.INVALID_ARGUMENT
    assert info.reason == "MALFORMED_REQUEST"
    assert "UTF-8" in message
    stub.Set(pb.SetRequest(key="still-serving", value=b"yes"), timeout=5)
    assert stub.Get(pb.GetRequest(key="still-serving"), timeout=5).value == b"yes"


def test_garbage_bytes_are_invalid_argument(channel):
    raw = channel.unary_unary("/kvgrpc.v1.KeyValue/Set")
    code, _message, info = error_of(lambda: raw(b"\xff\xff\xff\xff\xff", timeout=5))
    assert code is Code.INVALID_ARGUMENT
    assert info.reason == "MALFORMED_REQUEST"


def test_unknown_method_is_unimplemented(channel):
    raw = channel.unary_unary("/kvgrpc.v1.KeyValue/Teleport")
    with pytest.raises(grpc.RpcError) as info:
        raw(b"", timeout=5)
    assert info.value.code() is Code.UNIMPLEMENTED


def test_reflection_lists_the_services(channel):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    names = {service.name for response in responses for service in response.list_services_response.service}
    assert {"kvgrpc.v1.KeyValue", "grpc.health.v1.Health"} <= names


class _BrokenAdapter(PythonAdapter):
    def get(self, key: str) -> bytes:
        raise RuntimeError("disk on fire: secret-path /var/lib/x")


def test_unexpected_error_is_internal_with_generic_message(caplog):
    store = _BrokenAdapter(sweep_interval=None)
    running = create_server(ServerConfig(listen="127.0.0.1:0", workers=2), store)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel, caplog.at_level(logging.ERROR):
            stub = KeyValueStub(channel)
            code, message, info = error_of(lambda: stub.Get(pb.GetRequest(key="k"), timeout=5))
            assert code is Code.INTERNAL
            assert "disk on fire" not in message and "secret" not in message
            assert info.reason == "INTERNAL"
            stub.Set(pb.SetRequest(key="k", value=b"v"), timeout=5)  # still serving
        assert "disk on fire" in caplog.text and "Traceback" in caplog.text
    finally:
        running.shutdown(grace=1)
        store.close()
