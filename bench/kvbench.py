"""kvbench: kvgrpc's benchmark, with etcd, Redis, a bare grpcio floor and the in-process adapter side by side.

What runs (every server a child process on 127.0.0.1, on a free port):

  kvgrpc/memory, kvgrpc/sqlite, kvgrpc/redis
                  `kvgrpc serve --listen 127.0.0.1:0 --store ...` (default flags),
                  driven through `kvgrpc.client.KeyValueClient`; the redis store
                  uses the redis-server below
  floor           bench/_floor.py: a dict behind one raw-bytes unary grpcio RPC,
                  16 workers, nothing else: the least a Python gRPC server costs
  etcd            /usr/bin/etcd (3.4), one member, data dir in a temp dir, called
                  through grpcio with bench/etcd/rpc.proto compiled at run time:
                  Range (linearizable, etcd's default) vs our get, Put vs our set
  redis           redis-server (--save "" --appendonly no) through redis-py:
                  GET/SET and pipelines of 100
  adapter/memory, adapter/sqlite
                  kvgrpc.adapters.PythonAdapter in this process: the floor for
                  kvgrpc's own logic, no network

Workloads: get, set, set_if_not_exists (fresh keys), delete_if_value_matches
(removes the keys set_if_not_exists inserted in the same round), list_keys
(a page of 64 keys), and pipelines of 100 sets/gets; 100-byte values. Loads:
1 thread in this process, 8 threads sharing one KeyValueClient, and 8 loader
processes (one client each). Runs are interleaved: each round runs every
system of a workload back to back, in an order that rotates every round;
every figure is the median over rounds, every ratio the median of per-round
ratios of runs made side by side. The machine is shared: only these ratios
mean anything, not the absolute figures.

Run:   .venv/bin/python bench/kvbench.py            (full, 6-7 minutes; make bench)
       .venv/bin/python bench/kvbench.py --quick    (smoke, under a minute; make test)
       .venv/bin/python bench/kvbench.py --memory   (adds peak RSS with 1,000,000 keys: +1 minute)
Output: a table on stdout, progress on stderr, and JSON (--json PATH, default
bench/results.json; --quick writes to a temp file unless --json is given).

A missing component (etcd, redis-server, grpcio-tools) is reported with how
to install it, and its comparisons are skipped. Every child is stopped in
`finally` (also on Ctrl-C and SIGTERM) and gets SIGTERM if this process dies.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper modules beside this file

import _memory
import _procs
from _drivers import PIPELINE_WORKLOADS, WORKLOADS, Driver, make_driver
from _load import LoaderPool, run_threads
from _report import Key, Ratio, Samples, memory_ratios, ratio_table, summarize, table, target_ratios, write_json

PROCS = 8  # loader processes
THREADS = 8  # threads sharing one client
DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class System:
    name: str
    spec: tuple[Any, ...]
    driver: Driver
    remote: bool  # reachable from loader processes
    children: list[_procs.Child] = field(default_factory=list)  # whose CPU counts as the server's

    @property
    def workloads(self) -> tuple[str, ...]:
        return self.driver.workloads

    def server_cpu(self) -> float | None:
        if not self.children:
            return None
        values = [c.cpu_seconds() for c in self.children]
        return None if any(v is None for v in values) else sum(v for v in values if v is not None)


@dataclass
class Item:
    system: str
    workload: str
    load: str  # "1 thread", "8 threads", "8 procs"

    @property
    def key(self) -> Key:
        return (self.system, self.workload, self.load)


# Systems in the order they run in each group: the pairs the targets compare sit
# next to each other (kvgrpc/memory with its 8-thread run, the floor and etcd;
# etcd with kvgrpc/sqlite), and the order rotates and reverses every round.
ORDER = ("kvgrpc/memory", "floor", "etcd", "kvgrpc/sqlite", "kvgrpc/redis", "redis", "adapter/memory", "adapter/sqlite")


def plan(systems: dict[str, System], quick: bool) -> list[list[Item]]:
    """Groups of runs compared side by side; each group runs back to back every round."""
    names = [n for n in ORDER if n in systems]
    groups: list[list[Item]] = []
    detail = WORKLOADS[2:]  # set_if_not_exists, delete_if_value_matches, list_keys
    for workload in WORKLOADS:
        chosen = [n for n in names if workload in systems[n].workloads]
        if quick and workload in detail:
            chosen = [n for n in chosen if n in ("kvgrpc/memory", "adapter/memory")]
        group = [Item(n, workload, "1 thread") for n in chosen]
        if workload in ("get", "set") and "kvgrpc/memory" in systems:
            group.insert(0, Item("kvgrpc/memory", workload, f"{THREADS} threads"))
        if group:
            groups.append(group)
    for workload in PIPELINE_WORKLOADS if not quick else PIPELINE_WORKLOADS[:1]:
        group = [Item(n, workload, "1 thread") for n in names if workload in systems[n].workloads]
        if group:
            groups.append(group)
    for workload in WORKLOADS if not quick else WORKLOADS[:2]:
        group = [Item(n, workload, f"{PROCS} procs") for n in names if systems[n].remote]
        group = [i for i in group if workload in systems[i.system].workloads]
        if group:
            groups.append(group)
    return groups


def round_order(group: list[Item], r: int) -> list[Item]:
    """Round r's order: rotated by r, and reversed in odd rounds (A B C, C B A... drift cancels in pairs)."""
    shift = r % len(group)
    order = group[shift:] + group[:shift]
    return order[::-1] if r % 2 else order


def version_of(command: list[str]) -> str | None:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (under a minute): fewer workloads")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 7; --quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per run (default 0.7; --quick 0.3)")
    parser.add_argument("--json", metavar="PATH", help=f"write every figure here (default {DEFAULT_JSON})")
    parser.add_argument("--memory", action="store_true", help="also measure peak RSS holding --memory-keys keys")
    parser.add_argument("--memory-keys", type=int, default=1_000_000, help="keys for --memory (default 1000000)")
    args = parser.parse_args(argv)
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick else 7)
    args.duration = args.duration if args.duration is not None else (0.3 if args.quick else 0.7)
    if not 1 <= args.rounds <= 20 or not 0.1 <= args.duration <= 30:
        parser.error("--rounds must be 1..20 and --duration 0.1..30 seconds")
    if args.quick and args.memory:
        parser.error("--memory is off in --quick: it takes minutes")
    if not 1000 <= args.memory_keys <= 10_000_000:
        parser.error("--memory-keys must be 1000..10000000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM ends the run through `finally`, like Ctrl-C, which stops every child.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import grpc

    t_begin = time.monotonic()
    missing = _procs.missing_components()
    for component, how in missing.items():
        print(f"MISSING {component}: {how}. Skipping its comparisons.", flush=True)
    have_etcd = "etcd" not in missing and "etcd-proto" not in missing
    have_redis = "redis-server" not in missing and "redis-py" not in missing

    workdir = tempfile.mkdtemp(prefix="kvbench-")
    children: list[_procs.Child] = []
    systems: dict[str, System] = {}
    pool: LoaderPool | None = None
    samples: Samples = {}
    failures: dict[str, str] = {}
    memory: list[dict[str, Any]] = []
    order: list[Key] = []
    meta: dict[str, Any] = {}
    try:
        # -- start everything at once, then wait for each ----------------------------------
        lifetime = 3600.0 + (3600.0 if args.memory else 0.0)
        pool = LoaderPool(PROCS, lifetime)
        kv_children = {
            "memory": _procs.start_kvgrpc("kvgrpc serve memory", "memory://", workdir),
            "sqlite": _procs.start_kvgrpc("kvgrpc serve sqlite", f"sqlite:///{workdir}/kv.sqlite3", workdir),
        }
        children.extend(kv_children.values())
        floor = _procs.start_floor(workdir)
        children.append(floor)
        redis_child = etcd_child = None
        gen_dir = ""
        if have_redis:
            try:
                redis_child = _procs.start_redis(workdir)
                children.append(redis_child)
                _procs.wait_redis(redis_child)
            except Exception as exc:
                have_redis, redis_child = False, None
                missing["redis-server"] = f"redis-server did not start ({exc})"
                print(f"MISSING redis-server: {missing['redis-server']}. Skipping its comparisons.", flush=True)
        if redis_child is not None:
            url = f"redis://127.0.0.1:{redis_child.port}/1"  # db 0 holds redis-py's keys
            kv_children["redis"] = _procs.start_kvgrpc("kvgrpc serve redis", url, workdir)
            children.append(kv_children["redis"])
        if have_etcd:
            try:
                gen_dir = _procs.compile_etcd_proto(tempfile.mkdtemp(prefix="etcd-pb-", dir=workdir))
                etcd_child = _procs.start_etcd(workdir)
                children.append(etcd_child)
                _procs.wait_etcd(etcd_child, gen_dir)
            except Exception as exc:
                have_etcd, etcd_child = False, None
                missing["etcd"] = f"etcd did not start ({exc})"
                print(f"MISSING etcd: {missing['etcd']}. Skipping its comparisons.", flush=True)

        for store, child in kv_children.items():
            child.wait_ready()
            extra = [redis_child] if store == "redis" and redis_child is not None else []
            spec = ("kvgrpc", child.target)
            systems[f"kvgrpc/{store}"] = System(f"kvgrpc/{store}", spec, make_driver(spec), True, [child, *extra])
        floor.wait_ready()
        systems["floor"] = System("floor", ("floor", floor.target), make_driver(("floor", floor.target)), True, [floor])
        if etcd_child is not None:
            spec = ("etcd", etcd_child.target, gen_dir)
            systems["etcd"] = System("etcd", spec, make_driver(spec), True, [etcd_child])
        if redis_child is not None:
            spec = ("redis", redis_child.port)
            systems["redis"] = System("redis", spec, make_driver(spec), True, [redis_child])
        for store, path in (("memory", None), ("sqlite", os.path.join(workdir, "adapter.sqlite3"))):
            spec = ("adapter", path)
            systems[f"adapter/{store}"] = System(f"adapter/{store}", spec, make_driver(spec), False)

        meta = {
            "python": platform.python_version(),
            "grpcio": grpc.__version__,
            "cpus": os.cpu_count(),
            "rounds": args.rounds,
            "duration_s": args.duration,
            "quick": args.quick,
            "value_bytes": 100,
            "loader_processes": PROCS,
            "threads_sharing_one_client": THREADS,
            "etcd": version_of([_procs.ETCD_BINARY, "--version"]) if have_etcd else None,
            "redis_server": version_of(["redis-server", "--version"]) if have_redis else None,
            "kvgrpc_pipeline": "pipeline_set" in systems["kvgrpc/memory"].workloads,
            "workdir": workdir,
            "loadavg_start": os.getloadavg(),
        }
        print(
            f"kvbench: python {meta['python']}, grpcio {meta['grpcio']}, {meta['cpus']} CPUs, "
            f"{args.rounds} round(s) x {args.duration:g}s per run, 100-byte values; etcd: {meta['etcd'] or 'skipped'}; "
            f"redis: {meta['redis_server'] or 'skipped'}; load average {meta['loadavg_start'][0]:.1f}",
            flush=True,
        )
        if not meta["kvgrpc_pipeline"]:
            print("KeyValueClient.pipeline: not available; (c) is reported as not available", flush=True)

        # -- warm up and write each caller's keys -------------------------------------------
        for system in systems.values():
            system.driver.prepare("m")
            if system.name == "kvgrpc/memory":
                for n in range(THREADS):
                    system.driver.prepare(f"t{n}")
            if system.remote:
                pool.prepare(system.spec)

        # -- the interleaved rounds ----------------------------------------------------------
        groups = plan(systems, args.quick)
        order = [item.key for group in groups for item in group]
        samples = {key: [None] * args.rounds for key in order}
        log(f"{len(order)} runs per round; rounds: {args.rounds}")
        for r in range(args.rounds):
            for group in groups:
                for item in round_order(group, r):
                    run_item(item, systems, pool, r, args.duration, samples, failures)

        # -- memory --------------------------------------------------------------------------
        if args.memory:
            memory = run_memory(pool, workdir, args.memory_keys)
    finally:
        for system in systems.values():
            with contextlib.suppress(Exception):
                system.driver.close()
        if pool is not None:
            pool.stop()
        _procs.stop_all(children)
        shutil.rmtree(workdir, ignore_errors=True)

    # -- report ----------------------------------------------------------------------------
    emit = print
    emit("")
    table(samples, order, emit)
    emit("")
    emit("ops/s: median over rounds (a pipeline counts 100 ops); p50/p99: per call; srv us/op: CPU of the server")
    emit("process(es) per op (kvgrpc/redis: kvgrpc + redis-server); cli us/op: CPU of the calling process(es) per op")
    stores = [s.split("/")[1] for s in systems if s.startswith("kvgrpc/")]
    ratios = target_ratios(samples, args.rounds, stores, ["1 thread", f"{PROCS} procs"])
    if not meta.get("kvgrpc_pipeline", False):
        ratios.append(
            Ratio(
                "c",
                "kvgrpc pipeline() of 100 vs redis-py pipeline of 100",
                ">= 1.0",
                [],
                "not available: KeyValueClient has no pipeline()",
            )
        )
    ratios += memory_ratios(memory)
    emit("")
    emit("Targets (median of per-round ratios [per round]):")
    ratio_table(ratios, emit)
    if not have_etcd:
        emit(f"(a) kvgrpc vs etcd: skipped, {missing.get('etcd') or missing.get('etcd-proto')}")
    if not have_redis:
        emit(f"(c) and redis: skipped, {missing.get('redis-server') or missing.get('redis-py')}")
    for key, error in failures.items():
        emit(f"FAILED {key}: {error}")
    wall = time.monotonic() - t_begin
    emit(f"\ntotal wall time {wall:.0f}s")

    path = args.json or (os.path.join(tempfile.gettempdir(), "kvbench-quick.json") if args.quick else DEFAULT_JSON)
    meta["wall_seconds"] = round(wall, 1)
    meta["loadavg_end"] = os.getloadavg()
    meta["missing"] = missing
    document = {
        "meta": meta,
        "results": [
            {"system": s, "workload": w, "load": ld, "rounds": samples[(s, w, ld)], **medians(samples[(s, w, ld)])}
            for (s, w, ld) in order
        ],
        "targets": [ratio.as_json() for ratio in ratios],
        "pipeline_available": meta.get("kvgrpc_pipeline", False),
        "memory": memory,
        "failures": failures,
    }
    write_json(str(path), document)
    emit(f"JSON written to {path}")
    return 0


def medians(rows: list[dict[str, Any] | None]) -> dict[str, Any]:
    from _report import med

    return {
        name: med(rows, name) for name in ("ops_s", "p50_ms", "p99_ms", "mean_ms", "srv_cpu_us_op", "cli_cpu_us_op")
    }


def run_item(
    item: Item,
    systems: dict[str, System],
    pool: LoaderPool,
    r: int,
    duration: float,
    samples: Samples,
    failures: dict[str, str],
) -> None:
    system = systems[item.system]
    if not system.remote:
        duration = max(0.1, duration / 2)  # in process: steady, so half the time is enough
    elif item.load.endswith("procs"):
        duration *= 1.5  # 8 processes on a shared box: the noisiest runs get the longest windows
    cpu0 = system.server_cpu()
    try:
        if item.load == "1 thread":
            result = run_threads(system.driver, item.workload, 1, r, duration, "m")
        elif item.load.endswith("threads"):
            result = run_threads(system.driver, item.workload, THREADS, r, duration, "t")
        else:
            result = pool.run(system.spec, item.workload, r, duration)
    except Exception as exc:
        failures[" ".join(item.key)] = f"{type(exc).__name__}: {exc}"[:500]
        log(f"  round {r + 1} {item.workload:<24} {item.load:<9} {item.system:<15} FAILED: {exc}")
        return
    cpu1 = system.server_cpu()
    sample = summarize(result, None if cpu0 is None or cpu1 is None else cpu1 - cpu0)
    samples[item.key][r] = sample
    if result.first_error:
        failures.setdefault(" ".join(item.key), result.first_error)
    log(
        f"  round {r + 1} {item.workload:<24} {item.load:<9} {item.system:<15} {sample['ops_s']:9.0f} ops/s "
        f"p50 {sample['p50_ms']:.3f} ms p99 {sample['p99_ms']:.3f} ms"
        + (f" errors {result.errors}" if result.errors else "")
    )


def run_memory(pool: LoaderPool, workdir: str, keys: int) -> list[dict[str, Any]]:
    """Peak RSS of a fresh server per store holding `keys` keys (its own children, stopped here)."""
    out = []
    starts: dict[str, Callable[[], _procs.Child]] = {
        "memory": lambda: _procs.start_kvgrpc("kvgrpc serve memory (rss)", "memory://", workdir),
        "sqlite": lambda: _procs.start_kvgrpc("kvgrpc serve sqlite (rss)", f"sqlite:///{workdir}/rss.sqlite3", workdir),
    }
    for store, start in starts.items():
        out.append(_memory.measure_store(pool, 4, start, store, keys, budget=900.0, log=log))
    return out


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; every child was stopped", file=sys.stderr)
        sys.exit(130)
