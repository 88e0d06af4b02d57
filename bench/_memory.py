"""kvbench --memory: peak RSS of a `kvgrpc serve` child holding many keys.

A fresh server per store is filled with N keys (`kvbench/m/NNNNNNN`, 17
bytes) of 100-byte values by the loader processes, each sending its slice in
`KeyValueClient.pipeline()` batches of 1000 sets (or, on a client without
pipelines, 64 concurrent Set calls). Its peak RSS (VmHWM) is then compared
with the raw data size, the sum of key and value bytes.
"""

from __future__ import annotations

import time
from typing import Any

from _drivers import VALUE

BATCH = 1000
WINDOW = 64  # concurrent Set calls per loader when the client has no pipeline()


def memory_key(i: int) -> str:
    return f"kvbench/m/{i:07d}"


def load_slice(target: str, first: int, count: int, deadline: float) -> int:
    """In a loader: set keys first..first+count-1; return how many landed before `deadline`."""
    from kvgrpc.client import KeyValueClient

    kv = KeyValueClient(target, timeout=120.0)
    loaded, end = 0, first + count
    try:
        if hasattr(kv, "pipeline"):
            i = first
            while i < end and time.monotonic() < deadline:
                n = min(BATCH, end - i)
                with kv.pipeline() as p:
                    for j in range(i, i + n):
                        p.set(memory_key(j), VALUE)
                    p.execute()
                i += n
                loaded += n
            return loaded
        return _load_with_futures(target, first, end, deadline)
    finally:
        kv.close()


def _load_with_futures(target: str, first: int, end: int, deadline: float) -> int:
    import grpc

    from kvgrpc.v1 import keyvalue_pb2 as pb
    from kvgrpc.v1.keyvalue_pb2_grpc import KeyValueStub

    loaded = 0
    with grpc.insecure_channel(target) as channel:
        stub = KeyValueStub(channel)
        pending: list[Any] = []
        i = first
        while (i < end and time.monotonic() < deadline) or pending:
            while i < end and len(pending) < WINDOW and time.monotonic() < deadline:
                pending.append(stub.Set.future(pb.SetRequest(key=memory_key(i), value=VALUE), timeout=120.0))
                i += 1
            pending.pop(0).result()
            loaded += 1
    return loaded


def measure_store(
    pool: Any, loaders: int, start_server: Any, store: str, keys: int, budget: float, log: Any
) -> dict[str, Any]:
    """Start a server for `store`, fill it through the pool, return its memory figures."""
    child = start_server()
    try:
        child.wait_ready()
        time.sleep(0.5)
        baseline = child.memory().get("VmRSS", 0)
        share = -(-keys // loaders)
        slices = [(child.target, n * share, min(share, keys - n * share)) for n in range(loaders)]
        slices = [s for s in slices if s[2] > 0]
        t0 = time.monotonic()
        deadline = t0 + budget
        loaded = sum(pool.call("_memory", "load_slice", [(*s, deadline) for s in slices], timeout=budget + 180))
        seconds = time.monotonic() - t0
        mem = child.memory()
    finally:
        child.stop()
    key_bytes = sum(len(memory_key(i)) for i in range(loaded))
    raw = key_bytes + loaded * len(VALUE)
    peak = mem.get("VmHWM", 0)
    figures = {
        "store": store,
        "keys_requested": keys,
        "keys_loaded": loaded,
        "value_bytes": len(VALUE),
        "raw_bytes": raw,
        "baseline_rss_bytes": baseline,
        "rss_bytes": mem.get("VmRSS", 0),
        "peak_rss_bytes": peak,
        "peak_over_raw": peak / raw if raw else float("nan"),
        "growth_over_raw": (peak - baseline) / raw if raw else float("nan"),
        "load_seconds": round(seconds, 1),
        "load_keys_per_s": round(loaded / seconds) if seconds else None,
    }
    log(
        f"  memory {store:<7} {loaded:,} keys in {seconds:.0f}s: peak RSS {peak / 2**20:.0f} MiB "
        f"(baseline {baseline / 2**20:.0f} MiB), raw {raw / 2**20:.0f} MiB, ratio {figures['peak_over_raw']:.2f}"
    )
    return figures
