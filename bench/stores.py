"""Store throughput for kvgrpc: memory vs SQLite vs Redis behind `kvgrpc serve`.

Three real `kvgrpc serve` child processes (default flags, 16 workers) on
`memory://`, `sqlite:///<tmp>/kv.sqlite3` and `redis://127.0.0.1:<port>/0`,
the last backed by a `redis-server` child (no persistence). The load
(`KeyValueClient.set` then `.get`, 16-byte values, one shared client per
server) runs in this process with 1 thread and with 8 threads. Measurements
are interleaved A B C (the order rotates every round), and every number is a
median over rounds; the ratios are medians of per-round ratios against memory.

Run:  .venv/bin/python bench/stores.py            (about a minute)
      .venv/bin/python bench/stores.py --duration 0.5 --rounds 1   (smoke)

Every child is stopped in `finally`, and on Linux also dies with this process
(PR_SET_PDEATHSIG), so an interrupted run leaves nothing behind.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper modules beside this file

from _drivers import SetGetDriver
from _load import run_threads
from _procs import Child, missing_components, start_kvgrpc, start_redis, stop_all, wait_redis
from _report import median, median_columns, summarize

LOADS = (1, 8)  # client threads


def measure(server: Child, driver: SetGetDriver, threads: int, duration: float, extra_cpu: Child | None) -> dict:
    def cpu() -> float | None:
        own = server.cpu_seconds()
        other = extra_cpu.cpu_seconds() if extra_cpu is not None else 0.0
        return None if own is None or other is None else own + other

    cpu0 = cpu()
    result = run_threads(driver, "set+get", threads, 0, duration, "t")
    cpu1 = cpu()
    return summarize(result, None if cpu0 is None or cpu1 is None else cpu1 - cpu0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    args = parser.parse_args()
    if not 0.2 <= args.duration <= 5 or not 1 <= args.rounds <= 5:
        parser.error("--duration must be 0.2..5 and --rounds 1..5 (the run is kept under two minutes)")

    # SIGTERM/SIGINT end the run through `finally`, which stops every child.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    missing = missing_components()
    for part in ("redis-server", "redis-py"):
        if part in missing:
            raise SystemExit(missing[part])
    workdir = tempfile.mkdtemp(prefix="kvgrpc-bench-stores-")
    children: list[Child] = []
    drivers: dict[str, SetGetDriver] = {}
    t_begin = time.monotonic()
    try:
        redis_child = start_redis(workdir)
        children.append(redis_child)
        wait_redis(redis_child)
        stores = {
            "memory": "memory://",
            "sqlite": f"sqlite:///{workdir}/kv.sqlite3",
            "redis": f"redis://127.0.0.1:{redis_child.port}/0",
        }
        servers: dict[str, Child] = {}
        for name, url in stores.items():
            servers[name] = start_kvgrpc(f"kvgrpc serve {name}", url, workdir)
            children.append(servers[name])
        for server in servers.values():
            server.wait_ready()

        import grpc

        print(
            f"kvgrpc store bench: python {platform.python_version()}, grpcio {grpc.__version__}, "
            f"{os.cpu_count()} CPUs, {args.rounds} rounds x {args.duration:g}s, set+get of 16-byte values, "
            "one KeyValueClient per server shared by the load threads",
            flush=True,
        )
        for name, server in servers.items():
            drivers[name] = SetGetDriver(server.target)
            drivers[name].warm(0.5)

        names = list(stores)
        samples: dict[tuple[str, int], list[dict[str, Any]]] = {}
        ratios: dict[tuple[str, int], list[float]] = {}
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for threads in LOADS:
                this_round: dict[str, float] = {}
                for name in order:
                    extra = redis_child if name == "redis" else None
                    sample = measure(servers[name], drivers[name], threads, args.duration, extra)
                    samples.setdefault((name, threads), []).append(sample)
                    this_round[name] = sample["ops_s"]
                    print(
                        f"  round {r + 1} {name:<7} {threads} thread(s) {sample['ops_s']:8.0f} ops/s "
                        f"p50 {sample['p50_ms']:.3f} ms p99 {sample['p99_ms']:.3f} ms errors {sample['errors']}",
                        file=sys.stderr,
                        flush=True,
                    )
                for name in names:
                    base = this_round["memory"]
                    ratios.setdefault((name, threads), []).append(this_round[name] / base if base else float("nan"))
    finally:
        for driver in drivers.values():
            driver.close()
        stop_all(children)
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"\n{'store':<8} {'load':<10} {'ops/s':>9} {'range (rounds)':^19} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'srvCPU':>8} {'x memory':>8} {'errors':>6}"
    )
    for threads in LOADS:
        for name in names:
            rows = samples[(name, threads)]
            load = f"{threads} thread" + ("s" if threads > 1 else "")
            print(
                f"{name:<8} {load:<10} {median_columns(rows)}"
                f" {median(ratios[(name, threads)]):8.2f} {sum(s['errors'] for s in rows):6d}"
            )
    print(f"\ntotal wall time {time.monotonic() - t_begin:.0f}s")
    print(
        "ops/s counts set and get separately; srvCPU = user+sys CPU per op of the kvgrpc server"
        " (plus redis-server for redis); x memory = median of per-round ratios to memory://"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
