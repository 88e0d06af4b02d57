"""What one call of each workload is, for each system kvbench measures.

A driver is built from a picklable spec, so the loader processes can build
their own: ("kvgrpc", target), ("floor", target), ("etcd", target, gen_dir),
("redis", port), ("adapter", sqlite_path_or_None) and ("setget", target), the
last for bench/stores.py and bench/server_model.py. `op(workload, tag, seq)`
returns a callable doing one call and the number of operations that call
carries (100 for pipelines); its return value is truthy on a "hit" (a key
found, inserted or deleted).

Keys are per caller (`tag`), so callers never contend for one key:
  kvbench/k/<tag>/NNN         64 keys, written by prepare(): get, set, list_keys
  kvbench/l/<tag>/<seq>/N     fresh keys: set_if_not_exists inserts them, and
                              delete_if_value_matches (same round, `seq`) removes
                              them, after as many again were written untimed
  kvbench/p/<tag>/NNN         100 keys per pipeline
Values are 100 bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

VALUE = b"v" * 100
KEYS = 64
PIPELINE = 100
TIMEOUT = 5.0  # seconds; the deadline every remote call carries, as KeyValueClient's default

WORKLOADS = ("get", "set", "set_if_not_exists", "delete_if_value_matches", "list_keys")
PIPELINE_WORKLOADS = ("pipeline_set", "pipeline_get")

Op = Callable[[int], Any]


def keys(tag: str) -> list[str]:
    return [f"kvbench/k/{tag}/{i:03d}" for i in range(KEYS)]


def pipeline_keys(tag: str) -> list[str]:
    return [f"kvbench/p/{tag}/{i:03d}" for i in range(PIPELINE)]


def lock_key(tag: str, seq: int, i: int) -> str:
    return f"kvbench/l/{tag}/{seq}/{i}"


class Driver:
    workloads: tuple[str, ...] = ("get", "set")
    inserted: dict[tuple[str, int], int]  # (tag, seq) -> keys set_if_not_exists inserted

    def __init__(self) -> None:
        self.inserted = {}

    def prepare(self, tag: str) -> None:
        """Write the tag's keys (get and list_keys read them) and their pipeline keys."""
        op, _ = self.op("set", tag, 0)
        for i in range(KEYS):
            op(i)
        if "pipeline_set" in self.workloads:
            self.op("pipeline_set", tag, 0)[0](0)

    def op(self, workload: str, tag: str, seq: int) -> tuple[Op, int]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _PortDriver(Driver):
    """kvgrpc's port (`KeyValueClient` or `PythonAdapter`): every workload."""

    def __init__(self, kv: Any) -> None:
        super().__init__()
        self.kv = kv
        self.workloads = WORKLOADS + (PIPELINE_WORKLOADS if hasattr(kv, "pipeline") else ())

    def top_up(self, tag: str, seq: int, first: int, count: int) -> None:
        """Write lock keys first..first+count-1 (untimed), so delete_if_value_matches
        always finds its key even when it runs faster than set_if_not_exists did."""
        kv, end = self.kv, first + count
        for start in range(first, end, 1000):
            if hasattr(kv, "pipeline"):
                with kv.pipeline() as p:
                    for i in range(start, min(start + 1000, end)):
                        p.set(lock_key(tag, seq, i), VALUE)
                    p.execute()
            else:
                for i in range(start, min(start + 1000, end)):
                    kv.set(lock_key(tag, seq, i), VALUE)

    def op(self, workload: str, tag: str, seq: int) -> tuple[Op, int]:
        kv, ks = self.kv, keys(tag)
        if workload == "get":
            return (lambda i: kv.get(ks[i % KEYS])), 1
        if workload == "set":
            return (lambda i: kv.set(ks[i % KEYS], VALUE)), 1
        if workload == "set_if_not_exists":
            return (lambda i: kv.set_if_not_exists(lock_key(tag, seq, i), VALUE)), 1
        if workload == "delete_if_value_matches":
            return (lambda i: kv.delete_if_value_matches(lock_key(tag, seq, i), VALUE)), 1
        if workload == "list_keys":
            prefix = f"kvbench/k/{tag}/"
            return (lambda i: kv.list_keys(prefix, limit=100).keys), 1
        pks = pipeline_keys(tag)
        if workload == "pipeline_set":

            def pipeline_set(_i: int) -> list[Any]:
                with kv.pipeline() as p:
                    for k in pks:
                        p.set(k, VALUE)
                    return p.execute()

            return pipeline_set, PIPELINE
        if workload == "pipeline_get":

            def pipeline_get(_i: int) -> list[Any]:
                with kv.pipeline() as p:
                    for k in pks:
                        p.get(k)
                    return p.execute()

            return pipeline_get, PIPELINE
        raise ValueError(workload)

    def close(self) -> None:
        self.kv.close()


class KvgrpcDriver(_PortDriver):
    def __init__(self, target: str) -> None:
        from kvgrpc.client import KeyValueClient

        super().__init__(KeyValueClient(target, timeout=TIMEOUT))


class AdapterDriver(_PortDriver):
    def __init__(self, path: str | None) -> None:
        from kvgrpc.adapters import PythonAdapter

        super().__init__(PythonAdapter(path))
        self.workloads = WORKLOADS  # in process: nothing to pipeline


class FloorDriver(Driver):
    """The minimal grpcio server (_floor.py): raw bytes, one method."""

    def __init__(self, target: str) -> None:
        import grpc

        super().__init__()
        self.channel = grpc.insecure_channel(target)
        # Registered, as generated stubs (and so KeyValueClient's) are: no per-call method lookup.
        self.call = self.channel.unary_unary("/floor.Floor/Call", _registered_method=True)

    def op(self, workload: str, tag: str, seq: int) -> tuple[Op, int]:
        call, ks = self.call, [k.encode() for k in keys(tag)]
        if workload == "get":
            gets = [b"g" + k for k in ks]
            return (lambda i: call(gets[i % KEYS], timeout=TIMEOUT)), 1
        if workload == "set":
            sets = [b"s" + k + b"\0" + VALUE for k in ks]
            return (lambda i: call(sets[i % KEYS], timeout=TIMEOUT) or True), 1
        raise ValueError(workload)

    def close(self) -> None:
        self.channel.close()


class EtcdDriver(Driver):
    """etcd's KV service through grpcio: Range for get, Put for set."""

    def __init__(self, target: str, gen_dir: str) -> None:
        import grpc
        from _procs import load_etcd_stubs

        super().__init__()
        self.pb, stubs = load_etcd_stubs(gen_dir)
        self.channel = grpc.insecure_channel(target)
        self.stub = stubs.KVStub(self.channel)  # type: ignore[attr-defined]

    def op(self, workload: str, tag: str, seq: int) -> tuple[Op, int]:
        pb, stub, ks = self.pb, self.stub, [k.encode() for k in keys(tag)]
        if workload == "get":
            ranges = [pb.RangeRequest(key=k) for k in ks]  # type: ignore[attr-defined]
            return (lambda i: stub.Range(ranges[i % KEYS], timeout=TIMEOUT).kvs[0].value), 1
        if workload == "set":
            return (lambda i: stub.Put(pb.PutRequest(key=ks[i % KEYS], value=VALUE), timeout=TIMEOUT)), 1  # type: ignore[attr-defined]
        raise ValueError(workload)

    def close(self) -> None:
        self.channel.close()


class RedisDriver(Driver):
    """redis-server through redis-py: single GET/SET and pipelines of 100."""

    workloads = ("get", "set", *PIPELINE_WORKLOADS)

    def __init__(self, port: int) -> None:
        import redis

        super().__init__()
        self.client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=TIMEOUT)

    def op(self, workload: str, tag: str, seq: int) -> tuple[Op, int]:
        r, ks = self.client, keys(tag)
        if workload == "get":
            return (lambda i: r.get(ks[i % KEYS])), 1
        if workload == "set":
            return (lambda i: r.set(ks[i % KEYS], VALUE)), 1
        pks = pipeline_keys(tag)
        if workload == "pipeline_set":

            def pipeline_set(_i: int) -> list[Any]:
                p = r.pipeline(transaction=False)
                for k in pks:
                    p.set(k, VALUE)
                return p.execute()

            return pipeline_set, PIPELINE
        if workload == "pipeline_get":

            def pipeline_get(_i: int) -> list[Any]:
                p = r.pipeline(transaction=False)
                for k in pks:
                    p.get(k)
                return p.execute()

            return pipeline_get, PIPELINE
        raise ValueError(workload)

    def close(self) -> None:
        self.client.close()


class SetGetDriver(Driver):
    """The load of bench/stores.py and bench/server_model.py: one KeyValueClient
    (default 5 s deadline), workload "set+get" alternates `set` and `get` of one
    key, one call each, 16-byte values, 64 keys bench/<tag>/NN per caller."""

    workloads = ("set+get",)
    value = b"v" * 16

    def __init__(self, target: str) -> None:
        from kvgrpc.client import KeyValueClient

        super().__init__()
        self.kv = KeyValueClient(target)

    def warm(self, seconds: float = 0.3) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.kv.set("bench/warm", self.value)
            if self.kv.get("bench/warm") != self.value:
                raise AssertionError("bench/warm did not read back")

    def prepare(self, tag: str) -> None:
        self.warm()

    def op(self, workload: str, tag: str, seq: int) -> tuple[Op, int]:
        if workload != "set+get":
            raise ValueError(workload)
        kv, value, ks = self.kv, self.value, [f"bench/{tag}/{i:02d}" for i in range(KEYS)]

        def set_get(i: int) -> Any:
            return kv.get(ks[(i >> 1) % KEYS]) if i & 1 else kv.set(ks[(i >> 1) % KEYS], value)

        return set_get, 1

    def close(self) -> None:
        self.kv.close()


def make_driver(spec: tuple[Any, ...]) -> Driver:
    kind, *args = spec
    factory: dict[str, Callable[..., Driver]] = {
        "kvgrpc": KvgrpcDriver,
        "floor": FloorDriver,
        "etcd": EtcdDriver,
        "redis": RedisDriver,
        "adapter": AdapterDriver,
        "setget": SetGetDriver,
    }
    return factory[kind](*args)
