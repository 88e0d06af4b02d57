"""The real `kvgrpc serve` process: start-up, health, signals, restarts, the
sweeper, and two servers sharing one SQLite file."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from contract import race_set_if_not_exists, wait_until
from kvgrpc.client import KeyValueClient
from kvgrpc.ports import KVError, KVInvalidArgumentError, KVUnavailableError
from kvgrpc.server.app import ConfigError, ServerConfig, check_config
from serverproc import ServerProcess, run_cli

SERVING = health_pb2.HealthCheckResponse.SERVING


def test_startup_line_names_bound_address_and_store(memory_server):
    assert f"kvgrpc serving on 127.0.0.1:{memory_server.port} store=memory://" in memory_server.log
    assert memory_server.port > 0


def test_health_serving_for_server_and_service(memory_server):
    assert memory_server.health("") == SERVING
    assert memory_server.health("kvgrpc.v1.KeyValue") == SERVING


def test_default_store_is_sqlite_under_data(tmp_path):
    with ServerProcess(None, cwd=str(tmp_path)) as server:
        assert "store=sqlite:///data/kv.sqlite3" in server.log
        with KeyValueClient(server.target) as kv:
            kv.set("k", b"v")
    assert (tmp_path / "data" / "kv.sqlite3").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_under_load_drains_and_exits_zero(tmp_path, signum):
    """8 busy clients: health flips to NOT_SERVING first, in-flight calls
    finish, new calls get UNAVAILABLE (never CANCELLED or INTERNAL), the
    process exits 0 within the grace period, and every acknowledged write is
    there after a restart."""
    store = f"sqlite:///{tmp_path}/kv.sqlite3"
    server = ServerProcess(store, "--grace", "5").start()
    acknowledged: list[str] = []
    unexpected: list[BaseException] = []
    refused_at: list[float] = []
    not_serving_at: list[float] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        with KeyValueClient(server.target, timeout=2) as kv:
            i = 0
            while not stop.is_set():
                key = f"w{n}-{i}"
                try:
                    kv.set(key, b"v")
                except KVUnavailableError:
                    refused_at.append(time.monotonic())
                    return  # the server stopped taking new calls
                except KVError as exc:  # anything but UNAVAILABLE is a bug (CANCELLED included)
                    unexpected.append(exc)
                    return
                acknowledged.append(key)
                i += 1

    def watch_health() -> None:
        request = health_pb2.HealthCheckRequest(service="kvgrpc.v1.KeyValue")
        with server.channel() as channel:
            try:
                for response in health_pb2_grpc.HealthStub(channel).Watch(request, timeout=20):
                    if response.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                        not_serving_at.append(time.monotonic())
                        return
            except grpc.RpcError:
                pass

    watcher = threading.Thread(target=watch_health)
    watcher.start()
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    try:
        for t in threads:
            t.start()
        wait_until(lambda: len(acknowledged) > 100)
        started = time.monotonic()
        server.proc.send_signal(signum)
        assert server.proc.wait(10) == 0
        assert time.monotonic() - started < 5 + 1
    finally:
        stop.set()
        for t in threads:
            t.join()
        watcher.join(10)
        server.kill()
    assert not unexpected
    assert refused_at and not_serving_at and not_serving_at[0] <= min(refused_at)
    assert f"received {signal.Signals(signum).name}" in server.log
    assert "kvgrpc stopped" in server.log
    with ServerProcess(store) as restarted, KeyValueClient(restarted.target) as kv:
        assert all(kv.exists(key) for key in acknowledged)


def test_restart_on_same_file_keeps_data_and_ttls(tmp_path):
    store = f"sqlite:///{tmp_path}/kv.sqlite3"
    with ServerProcess(store) as server, KeyValueClient(server.target) as kv:
        kv.set("forever", b"1")
        kv.set("lease", b"2", ttl=300)
        kv.set("short", b"3", ttl=1)
    time.sleep(1.05)  # let "short" expire while no server runs
    with ServerProcess(store) as server, KeyValueClient(server.target) as kv:
        assert kv.get("forever") == b"1"
        assert kv.get("lease") == b"2"
        assert 295 <= kv.get_ttl("lease") <= 300
        assert not kv.exists("short")


def test_sweeper_shrinks_a_store_of_expired_keys(tmp_path):
    path = tmp_path / "kv.sqlite3"

    def rows() -> int:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT count(*) FROM kv").fetchone()[0]

    with ServerProcess(f"sqlite:///{path}", "--sweep-interval", "0.2") as server, KeyValueClient(server.target) as kv:
        for i in range(300):
            kv.set(f"k{i}", b"x" * 100, ttl=1)
        kv.set("keep", b"v")
        assert rows() >= 300
        wait_until(lambda: rows() == 1, timeout=10)
        assert kv.list_keys().keys == ("keep",)


def test_two_servers_on_one_sqlite_file_grant_one_insert(tmp_path):
    store = f"sqlite:///{tmp_path}/kv.sqlite3"
    with ServerProcess(store) as a, ServerProcess(store) as b:
        clients = [KeyValueClient(a.target), KeyValueClient(b.target)]
        try:
            for round_ in range(5):
                results = race_set_if_not_exists(clients, f"race-{round_}")
                assert sorted(results) == [False] * 15 + [True]
                assert clients[0].get(f"race-{round_}") == clients[1].get(f"race-{round_}")
        finally:
            for client in clients:
                client.close()


def test_environment_configures_the_server():
    env = {"KVGRPC_STORE": "memory://", "KVGRPC_MAX_VALUE_BYTES": "10", "KVGRPC_MAX_KEY_BYTES": "8"}
    with ServerProcess(None, env=env) as server, KeyValueClient(server.target) as kv:
        assert "store=memory://" in server.log
        kv.set("12345678", b"0123456789")
        with pytest.raises(KVInvalidArgumentError, match="max-value-bytes"):
            kv.set("k", b"01234567890")
        with pytest.raises(KVInvalidArgumentError, match="max-key-bytes"):
            kv.set("123456789", b"")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--store", "postgres://db/kv"], "unknown store"),
        (["--store", "sqlite://relative.db"], "bad SQLite URL"),
        (["--store", "sqlite:///kv.db?journal_mode=bogus"], "journal_mode"),
        (["--store", "sqlite:///kv.db?cache=big"], "unknown SQLite option"),
        (["--store", "memory://extra"], "memory store URL"),
        (["--grace", "-1"], "--grace"),
        (["--workers", "0"], "--workers"),
        (["--max-value-bytes", "lots"], "--max-value-bytes"),
        (["--listen", "127.0.0.1:99999"], "port from 0 to 65535"),
        (["--listen", "127.0.0.1"], "HOST:PORT"),
        (["--listen", "0.0.0.0:0"], "refusing to serve 0.0.0.0:0 without TLS or tokens"),
        (["--tls-cert", "x.pem"], "--tls-cert and --tls-key go together"),
        (["--max-page-size", "5000"], "--max-page-size"),
    ],
)
def test_bad_configuration_exits_2_with_a_message(tmp_path, args, message):
    result = run_cli("serve", "--listen", "127.0.0.1:0", *args, timeout=30, cwd=str(tmp_path))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.decode()


def test_bad_environment_value_exits_2():
    result = run_cli("serve", extra_env={"KVGRPC_GRACE": "soon"})
    assert result.returncode == 2
    assert "--grace" in result.stderr.decode()


def test_port_in_use_exits_2(memory_server):
    result = run_cli("serve", "--listen", memory_server.target, "--store", "memory://")
    assert result.returncode == 2
    assert "cannot listen" in result.stderr.decode()


def test_reuse_port_lets_processes_on_one_store_share_a_port(tmp_path):
    store = f"sqlite:///{tmp_path}/kv.sqlite3"
    with ServerProcess(store, "--reuse-port") as first:
        shared = first.target
        # A later --listen wins over the harness's own 127.0.0.1:0.
        with ServerProcess(store, "--reuse-port", "--listen", shared) as second:
            assert second.target == shared
            with KeyValueClient(shared) as kv:
                kv.set("shared", b"v")
            first.terminate()  # the port stays served, by the second process
            with KeyValueClient(shared) as kv:
                assert kv.get("shared") == b"v"
    with pytest.raises(ConfigError, match="memory"):
        check_config(ServerConfig(store="memory://", reuse_port=True))
