"""Promises kept under faults: lost replies, killed servers, expiry at scale."""

from __future__ import annotations

import random
import threading
import time

import pytest

from faultproxy import FaultProxy
from kvgrpc.adapters import PythonAdapter
from kvgrpc.client import KeyValueClient
from kvgrpc.ports import KVNotFoundError, KVTransportError
from kvgrpc.server.stores import open_store
from serverproc import ServerProcess


@pytest.fixture
def proxied(sqlite_server):
    with FaultProxy(sqlite_server.port) as proxy, KeyValueClient(proxy.target, timeout=5) as kv:
        kv.set("warm-up", b"")  # the connection exists before faults are armed
        yield proxy, kv


def test_set_if_not_exists_that_landed_reports_true_after_a_lost_reply(proxied, sqlite_server):
    proxy, kv = proxied
    proxy.drop_next_reply()
    assert kv.set_if_not_exists("lost-reply/sine", b"mine", ttl=60) is True
    assert proxy.dropped == 1
    with KeyValueClient(sqlite_server.target) as direct:
        assert direct.get("lost-reply/sine") == b"mine"


def test_delete_if_value_matches_that_landed_reports_true_after_a_lost_reply(proxied):
    proxy, kv = proxied
    kv.set("lost-reply/dvm", b"mine")
    proxy.drop_next_reply()
    assert kv.delete_if_value_matches("lost-reply/dvm", b"mine") is True
    assert proxy.dropped == 1
    assert not kv.exists("lost-reply/dvm")


def test_delete_and_expire_survive_lost_replies(proxied):
    proxy, kv = proxied
    kv.set("lost-reply/del", b"v")
    proxy.drop_next_reply()
    kv.delete("lost-reply/del")  # no KVNotFoundError from the retry
    kv.set("lost-reply/exp", b"mine")
    proxy.drop_next_reply()
    assert kv.expire("lost-reply/exp", 90, if_value=b"mine") is True
    assert proxy.dropped == 2


def test_lock_never_times_out_on_a_lock_it_holds(proxied):
    proxy, kv = proxied
    for round_ in range(3):
        proxy.drop_next_reply()  # the acquiring SetIfNotExists loses its reply
        with kv.lock("lost-reply/lock", ttl=30, timeout=2) as held:
            assert kv.get("lost-reply/lock") == held.token
            assert held.fencing_token == round_ + 1
        assert not kv.exists("lost-reply/lock")
    assert proxy.dropped == 3


# -- crash durability ------------------------------------------------------------------------------

WRITERS, KEYS_PER_WRITER, CYCLES = 4, 4, 4


class KeyModel:
    """One writer's view of its keys: the state its acknowledged writes
    imply, and the write it had in flight when the server died."""

    def __init__(self) -> None:
        self.state: dict[str, bytes | None] = {}
        self.in_flight: dict[str, tuple[str, bytes]] = {}
        self.acknowledged = 0

    def apply(self, key: str, op: str, value: bytes) -> bytes | None:
        """The state of `key` after `op` from the current state."""
        current = self.state.get(key)
        if op == "set":
            return value
        if op == "set_if_not_exists":
            return value if current is None else current
        if op == "delete":
            return None
        return None if current == value else current  # delete_if_value_matches


def run_writer(kv: KeyValueClient, writer: int, model: KeyModel, rng: random.Random, stop: threading.Event) -> None:
    seq = 0
    while not stop.is_set():
        seq += 1
        key = f"crash/w{writer}/k{rng.randrange(KEYS_PER_WRITER)}"
        current = model.state.get(key)
        op = rng.choice(["set", "set_if_not_exists", "delete", "delete_if_value_matches"])
        value = (
            current
            if op == "delete_if_value_matches" and current and rng.random() < 0.7
            else f"{writer}:{seq}".encode()
        )
        model.in_flight[key] = (op, value)
        try:
            if op == "set":
                kv.set(key, value)
            elif op == "set_if_not_exists":
                assert kv.set_if_not_exists(key, value) == (current is None), f"{op} misreported on {key}"
            elif op == "delete":
                try:
                    kv.delete(key)
                    assert current is not None, f"delete of absent {key} reported done"
                except KVNotFoundError:
                    assert current is None, f"delete of present {key} reported not found"
            else:
                assert kv.delete_if_value_matches(key, value) == (current == value), f"{op} misreported on {key}"
        except KVTransportError:
            return  # the server died with this write in flight: it may or may not have landed
        del model.in_flight[key]
        model.state[key] = model.apply(key, op, value)
        model.acknowledged += 1


@pytest.mark.parametrize("synchronous", ["normal", "full"])
def test_acknowledged_writes_survive_sigkill_cycles(tmp_path, synchronous):
    store = f"sqlite:///{tmp_path}/kv.sqlite3"
    models = [KeyModel() for _ in range(WRITERS)]
    rng = random.Random(7)
    killed_with_in_flight = 0
    for _cycle in range(CYCLES):
        server = ServerProcess(store, "--sqlite-synchronous", synchronous).start()
        try:
            stop = threading.Event()
            with KeyValueClient(server.target, timeout=2) as kv:
                threads = [
                    threading.Thread(target=run_writer, args=(kv, w, models[w], random.Random(rng.random()), stop))
                    for w in range(WRITERS)
                ]
                for t in threads:
                    t.start()
                time.sleep(rng.uniform(0.3, 0.8))
                server.proc.kill()  # SIGKILL: no drain, no clean close
                server.proc.wait()
                for t in threads:
                    t.join(30)
                stop.set()
        finally:
            server.kill()
        killed_with_in_flight += sum(len(m.in_flight) for m in models)
        with ServerProcess(store) as restarted, KeyValueClient(restarted.target) as kv:
            for model in models:
                for key in {*model.state, *model.in_flight}:
                    try:
                        actual: bytes | None = kv.get(key)
                    except KVNotFoundError:
                        actual = None
                    acknowledged = model.state.get(key)
                    possible = {acknowledged}
                    if key in model.in_flight:
                        possible.add(model.apply(key, *model.in_flight[key]))
                    assert actual in possible, f"{key}: found {actual!r}, acknowledged state {acknowledged!r}"
                    model.state[key] = actual  # the in-flight write is now settled either way
                model.in_flight.clear()
    total = sum(m.acknowledged for m in models)
    assert total > 200, total  # the cycles did real work
    print(
        f"\n{CYCLES} SIGKILL cycles, {total} acknowledged writes checked, {killed_with_in_flight} in flight at a kill"
    )


# -- expiry at scale -------------------------------------------------------------------------------

EXPIRING_KEYS = 100_000


class _Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _store_bytes(path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def _probe(kv: PythonAdapter, sweeping: threading.Event, longest: list[float]) -> None:
    """While the sweep runs, call the store and keep the longest wait."""
    while not sweeping.is_set():
        time.sleep(0.0005)
    while sweeping.is_set():
        started = time.perf_counter()
        assert kv.exists("probe")
        longest[0] = max(longest[0], time.perf_counter() - started)


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_sweeper_clears_100k_expired_keys_in_small_batches(tmp_path, store):
    clock = _Clock()
    path = tmp_path / "kv.sqlite3"
    kv = PythonAdapter(str(path) if store == "sqlite" else None, sweep_interval=None, clock=clock)
    kv.set("probe", b"stays")
    sizes, stalls = [], []
    try:
        for cycle in range(3):
            for i in range(EXPIRING_KEYS):
                kv.set(f"cycle{cycle}/{i:06d}", b"x" * 32, ttl=1)
            clock.now += 2
            sweeping = threading.Event()
            longest = [0.0]
            prober = threading.Thread(target=_probe, args=(kv, sweeping, longest))
            prober.start()
            started = time.perf_counter()
            sweeping.set()
            swept = kv.sweep_expired()
            sweep_seconds = time.perf_counter() - started
            sweeping.clear()
            prober.join()
            assert swept == EXPIRING_KEYS
            assert kv.count() == 1 and kv.list_keys().keys == ("probe",)
            stalls.append((longest[0], sweep_seconds))
            if store == "sqlite":
                sizes.append(_store_bytes(path))
    finally:
        kv.close()
    worst, whole = max(stalls)
    # Batches: a call waits for at most one batch, a small share of the whole sweep.
    assert worst < whole / 4, stalls
    if store == "sqlite":
        assert sizes[2] <= sizes[1] * 1.05, sizes  # freed pages are reused: the file stops growing
    print(f"\n{store}: longest stall {worst * 1000:.1f} ms during sweeps of {whole:.2f} s; file sizes {sizes}")


@pytest.mark.parametrize(("flag", "level"), [(None, 1), ("normal", 1), ("full", 2), ("extra", 3)])
def test_sqlite_synchronous_flag_sets_the_pragma(tmp_path, flag, level):
    store = open_store(
        f"sqlite:///{tmp_path}/kv.sqlite3?synchronous=NORMAL", sweep_interval=None, sqlite_synchronous=flag
    )
    try:
        assert store._table._db.execute("PRAGMA synchronous").fetchone()[0] == level
    finally:
        store.close()
