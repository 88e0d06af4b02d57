"""Scale out: three `kvgrpc serve` replicas on one Redis behind one
round-robin `KeyValueClient`. A lock is exclusive across the replicas, and a
replica killed with SIGKILL mid-run loses no acknowledged write."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from kvgrpc.client import KeyValueClient
from kvgrpc.ports import KVTransportError
from redisproc import RedisProcess
from serverproc import ServerProcess

THREADS = 8
BEFORE_KILL = 20  # lock entries before one replica is killed
AFTER_KILL = 30  # lock entries the survivors must serve after it


@contextlib.contextmanager
def replicas(store: str, count: int, *args: str) -> Iterator[list[ServerProcess]]:
    """`count` servers on `store`, started side by side, all stopped on the way out."""
    servers = [ServerProcess(store, *args) for _ in range(count)]
    try:
        errors: list[BaseException] = []

        def start(server: ServerProcess) -> None:
            try:
                server.start()
            except BaseException as exc:
                errors.append(exc)

        starters = [threading.Thread(target=start, args=(s,)) for s in servers]
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        if errors:
            raise errors[0]
        yield servers
    finally:
        for server in servers:
            with contextlib.suppress(Exception):
                if server.proc is not None:
                    server.terminate(timeout=10)
            server.kill()


@pytest.fixture
def redis_proc(tmp_path) -> Iterator[RedisProcess]:
    with RedisProcess(tmp_path / "redis") as server:
        yield server


def test_lock_is_exclusive_across_replicas_and_survives_a_sigkill(redis_proc):
    with replicas(redis_proc.url, 3) as servers, KeyValueClient([s.target for s in servers]) as kv:
        guard = threading.Lock()
        inside, overlaps, entries = [0], [0], [0]
        acked: dict[str, bytes] = {}
        transport_errors: list[BaseException] = []
        unexpected: list[BaseException] = []
        stop = threading.Event()

        def worker(t: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    # ttl bounds the stall if a reply is lost with the killed replica.
                    with kv.lock("replicas/lock", ttl=3, timeout=20, retry_delay=0.002):
                        with guard:
                            inside[0] += 1
                            overlaps[0] += inside[0] > 1
                            entries[0] += 1
                        time.sleep(0.001)
                        with guard:
                            inside[0] -= 1
                    key, value = f"replicas/acked/{t}/{i}", f"{t}:{i}".encode()
                    kv.set(key, value)
                    with guard:
                        acked[key] = value
                except KVTransportError as exc:  # the call may or may not have happened
                    with guard:
                        transport_errors.append(exc)
                except BaseException as exc:
                    unexpected.append(exc)
                    return

        def wait_entries(count: int, timeout: float = 30.0) -> None:
            deadline = time.monotonic() + timeout
            while entries[0] < count and not unexpected:
                assert time.monotonic() < deadline, f"only {entries[0]} lock entries of {count} in {timeout}s"
                time.sleep(0.01)

        workers = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        for w in workers:
            w.start()
        try:
            wait_entries(BEFORE_KILL)
            with guard:
                acked_before_kill = len(acked)
            servers[1].kill()  # SIGKILL: no drain, in-flight calls are cut
            at_kill = entries[0]
            wait_entries(at_kill + AFTER_KILL)
        finally:
            stop.set()
            for w in workers:
                w.join(30)
        assert not unexpected, unexpected[0]
        assert overlaps[0] == 0, "two holders inside the critical section at once"
        assert entries[0] >= BEFORE_KILL + AFTER_KILL
        assert servers[1].proc is not None and servers[1].proc.returncode == -9
        assert all(s.proc is not None and s.proc.poll() is None for s in (servers[0], servers[2]))
        assert len(acked) > acked_before_kill, "no write was acknowledged after the kill"
        with contextlib.closing(redis_proc.client()) as raw:
            keys = sorted(acked)
            assert raw.mget(keys) == [acked[k] for k in keys], "an acknowledged set is missing from Redis"
            assert raw.get(b"replicas/lock") is None or raw.pttl(b"replicas/lock") > 0
        assert len(transport_errors) <= THREADS, transport_errors
