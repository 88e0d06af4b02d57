"""What standard tooling and operators see: reflection, health Check and
Watch, Prometheus metrics, structured logs."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from contract import wait_until
from kvgrpc.client import KeyValueClient
from kvgrpc.ports import KVInvalidArgumentError, KVNotFoundError
from kvgrpc.server.stores import redact
from serverproc import ServerProcess

Status = health_pb2.HealthCheckResponse


# -- reflection -----------------------------------------------------------------------------


def test_reflection_alone_is_enough_to_call_get(memory_server):
    """A client with no .proto: discover the service, build GetRequest from the
    descriptors the server returns, and call Get."""
    with KeyValueClient(memory_server.target) as kv:
        kv.set("reflected", b"found it")
    with grpc.insecure_channel(memory_server.target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert "kvgrpc.v1.KeyValue" in database.get_services()
        pool = descriptor_pool.DescriptorPool(database)  # empty but for what reflection returns
        assert pool is not descriptor_pool.Default()
        service = pool.FindServiceByName("kvgrpc.v1.KeyValue")
        method = service.methods_by_name["Get"]
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        get = channel.unary_unary(
            f"/{service.full_name}/{method.name}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        response = get(request_class(key="reflected"), timeout=5)
    assert response.value == b"found it"
    assert type(response).DESCRIPTOR.file.pool is pool


# -- health ----------------------------------------------------------------------------------


def test_health_check_unknown_service_is_not_found(memory_server):
    with pytest.raises(grpc.RpcError) as info:
        memory_server.health("no.such.Service")
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


def test_health_watch_sees_not_serving_on_sigterm():
    with ServerProcess("memory://", "--grace", "2") as server:
        channel = grpc.insecure_channel(server.target)
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="kvgrpc.v1.KeyValue"), timeout=20
        )
        seen: list[int] = []
        first = threading.Event()

        def watch() -> None:
            try:
                for response in stream:
                    seen.append(response.status)
                    first.set()
            except grpc.RpcError:
                pass  # the server went away after NOT_SERVING
            first.set()

        watcher = threading.Thread(target=watch)
        watcher.start()
        assert first.wait(10)
        assert seen == [Status.SERVING]
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(20) == 0
        watcher.join(10)
        channel.close()
    assert seen[:2] == [Status.SERVING, Status.NOT_SERVING]


# -- metrics ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def metrics_server() -> Iterator[ServerProcess]:
    with ServerProcess("memory://", "--metrics-listen", "127.0.0.1:0", "--sweep-interval", "0.2") as server:
        yield server


def scrape(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return server.metrics()


def test_metrics_count_rpcs_latency_keys_and_sweeps(metrics_server):
    before = scrape(metrics_server)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    with KeyValueClient(metrics_server.target) as kv:
        for i in range(5):
            kv.set(f"m/{i}", b"v")
        for i in range(2):
            kv.get(f"m/{i}")
        for _ in range(3):
            with pytest.raises(KVNotFoundError):
                kv.get("m/missing")
        with pytest.raises(KVInvalidArgumentError):
            kv.set("k" * 5000, b"v")
        for i in range(4):
            kv.set(f"m/short/{i}", b"v", ttl=1)
        wait_until(lambda: scrape(metrics_server).get(("kvgrpc_expired_keys_swept_total", ()), 0) >= 4, timeout=10)
    after = scrape(metrics_server)

    assert delta("kvgrpc_rpcs_total", method="Set", code="OK") == 9
    assert delta("kvgrpc_rpcs_total", method="Get", code="OK") == 2
    assert delta("kvgrpc_rpcs_total", method="Get", code="NOT_FOUND") == 3
    assert delta("kvgrpc_rpcs_total", method="Set", code="INVALID_ARGUMENT") == 1
    assert delta("kvgrpc_rpc_duration_seconds_count", method="Get") == 5
    assert delta("kvgrpc_rpc_duration_seconds_count", method="Set") == 10
    assert delta("kvgrpc_rpc_duration_seconds_sum", method="Get") > 0
    assert delta("kvgrpc_expired_keys_swept_total") == 4
    assert after[("kvgrpc_keys", ())] == before.get(("kvgrpc_keys", ()), 0) + 5


def test_metrics_are_off_by_default(memory_server):
    assert "metrics=off" in memory_server.log


# -- logs ------------------------------------------------------------------------------------

SECRET_KEY = "customer-4711-ssn"
SECRET_VALUE = b"hunter2-value"


def test_json_logs_one_line_per_event_without_keys_or_values():
    server = ServerProcess("memory://", "--log-format", "json", "--log-level", "DEBUG").start()
    try:
        with KeyValueClient(server.target) as kv:
            kv.set(SECRET_KEY, SECRET_VALUE)
            with pytest.raises(KVNotFoundError):
                kv.get(SECRET_KEY + "-missing")
            with pytest.raises(KVInvalidArgumentError):
                kv.set(SECRET_KEY * 300, SECRET_VALUE)  # over the server's key limit
        assert server.terminate() == 0
    finally:
        server.kill()
    records = [json.loads(line) for line in server.output]  # every line is one JSON object
    events = [r.get("event") for r in records if r.get("event")]
    assert events == ["start", "draining", "stop"]
    start = records[[r.get("event") for r in records].index("start")]
    assert start["address"] == server.target and start["store"] == "memory://"
    assert {"time", "level", "logger", "message"} <= set(start)
    failures = [r for r in records if r.get("method")]
    assert [(r["method"], r["code"], r["reason"]) for r in failures] == [
        ("Get", "NOT_FOUND", "KEY_NOT_FOUND"),
        ("Set", "INVALID_ARGUMENT", "KEY_TOO_LONG"),
    ]
    assert failures[1]["field"] == "key"
    assert SECRET_KEY not in server.log and SECRET_VALUE.decode() not in server.log


def test_store_passwords_are_redacted():
    assert redact("redis://app:s3cret@cache:6379/0") == "redis://app:***@cache:6379/0"
    assert redact("redis://:s3cret@cache:6379") == "redis://:***@cache:6379"
    assert redact("sqlite:///data/kv.sqlite3") == "sqlite:///data/kv.sqlite3"
