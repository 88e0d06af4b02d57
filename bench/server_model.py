"""Sync (thread-pool) vs grpc.aio server model for kvgrpc, measured side by side.

Both servers host the same `KeyValueServicer` over an in-memory `PythonAdapter`:

  sync   the project's own `create_server(ServerConfig(workers=N), ...)`
  aio    `grpc.aio.server()` with a thin async wrapper whose handlers call the
         sync servicer methods directly (adapter calls take microseconds, so
         there is no thread hop), registered with the same (de)serializers

Every server runs in its own child process bound to 127.0.0.1 port 0; the
client load (`KeyValueClient.set` then `.get`, 16-byte values) runs in this
process (1 thread; 8 threads sharing one client) or in 4 loader child
processes (one client each). Measurements are interleaved A B A B over the
rounds, and every number reported is a median over rounds; the aio/sync ratio
is the median of the per-round ratios, each taken from two back-to-back runs.
A second sweep compares sync workers=4/16/64 under the 8-thread load.

Run:  .venv/bin/python bench/server_model.py            (about 2 minutes)
      .venv/bin/python bench/server_model.py --duration 1 --rounds 1   (smoke)

Every loop is bounded by a deadline, every child has a hard lifetime cap and
exits when this process goes away, and every child is stopped in `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import platform
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

VALUE = b"v" * 16
KEYS_PER_THREAD = 64
CHILD_LIFETIME = 600.0  # seconds; a child never outlives this even if orphaned
MAX_ERRORS = 50  # a load loop gives up after this many failed calls
CTX = mp.get_context("spawn")  # never fork a process that has gRPC state


# -- the aio wrapper around the project's sync servicer ----------------------------


class _Aborted(Exception):
    def __init__(self, status: Any) -> None:
        super().__init__("aborted")
        self.status = status


class _AbortCapture:
    """Stands in for the context given to a sync servicer method.

    The sync servicer only touches its context to abort (`errors.abort` calls
    `context.abort_with_status`); on an aio context that is a coroutine, so the
    status is carried out as an exception and awaited by the async handler.
    """

    def abort_with_status(self, status: Any) -> None:
        raise _Aborted(status)


def _async_unary(sync_method: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    async def handle(request: Any, context: Any) -> Any:
        try:
            return sync_method(request, _AbortCapture())
        except _Aborted as aborted:
            await context.abort_with_status(aborted.status)

    return handle


def add_to_aio_server(servicer: Any, server: Any) -> None:
    """`kvgrpc.server.servicer.add_to_server`, with async handlers for grpc.aio."""
    import grpc

    from kvgrpc.server.servicer import SERVICE_DESCRIPTOR, _lenient
    from kvgrpc.v1 import keyvalue_pb2 as pb

    handlers = {}
    for method in SERVICE_DESCRIPTOR.methods:
        request_class = getattr(pb, method.input_type.name)
        response_class = getattr(pb, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _async_unary(getattr(servicer, method.name)),
            request_deserializer=_lenient(request_class),
            response_serializer=response_class.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_DESCRIPTOR.full_name, handlers),))
    server.add_registered_method_handlers(SERVICE_DESCRIPTOR.full_name, handlers)


# -- server child processes ----------------------------------------------------------


def _arm_lifetime_cap() -> None:
    timer = threading.Timer(CHILD_LIFETIME, os._exit, args=(3,))
    timer.daemon = True
    timer.start()


def _wait_for_stop(conn: Connection) -> None:
    """Block until the parent says stop or goes away (EOF)."""
    with contextlib.suppress(EOFError, OSError):
        conn.recv()


def _sync_server_main(conn: Connection, workers: int) -> None:
    _arm_lifetime_cap()
    from kvgrpc.adapters import PythonAdapter
    from kvgrpc.server import ServerConfig, create_server

    adapter = PythonAdapter(sweep_interval=None)
    running = create_server(ServerConfig(listen="127.0.0.1:0", workers=workers), adapter)
    try:
        conn.send(running.port)
        _wait_for_stop(conn)
    finally:
        running.shutdown(1.0)
        adapter.close()


def _aio_server_main(conn: Connection) -> None:
    _arm_lifetime_cap()
    asyncio.run(_aio_serve(conn))


async def _aio_serve(conn: Connection) -> None:
    import grpc

    from kvgrpc.adapters import PythonAdapter
    from kvgrpc.client.channel import server_options
    from kvgrpc.server import ServerConfig
    from kvgrpc.server.app import _ENVELOPE_BYTES
    from kvgrpc.server.servicer import KeyValueServicer, Limits

    config = ServerConfig(listen="127.0.0.1:0")  # same limits and options as create_server
    limits = Limits(max_key_bytes=config.max_key_bytes, max_value_bytes=config.max_value_bytes)
    max_message = config.max_value_bytes + config.max_key_bytes + _ENVELOPE_BYTES
    adapter = PythonAdapter(sweep_interval=None)
    server = grpc.aio.server(options=server_options(max_message_bytes=max_message))
    add_to_aio_server(KeyValueServicer(adapter, limits), server)
    port = server.add_insecure_port(config.listen)
    await server.start()
    try:
        conn.send(port)
        await asyncio.get_running_loop().run_in_executor(None, _wait_for_stop, conn)
    finally:
        await server.stop(1.0)
        adapter.close()


class ServerProc:
    """One server child process; `stop()` is safe to call at any time, repeatedly."""

    def __init__(self, name: str, model: str, workers: int | None) -> None:
        self.name, self.model, self.workers = name, model, workers
        self.port = 0
        self._conn, child_conn = CTX.Pipe()
        if model == "sync":
            target, args = _sync_server_main, (child_conn, workers)
        else:
            target, args = _aio_server_main, (child_conn,)
        self.proc = CTX.Process(target=target, args=args, name=f"bench-{name}", daemon=True)
        self._child_conn = child_conn

    def start(self) -> None:
        self.proc.start()
        self._child_conn.close()

    def wait_port(self, timeout: float = 30.0) -> None:
        if not self._conn.poll(timeout):
            raise RuntimeError(f"server {self.name} did not report its port within {timeout}s")
        self.port = self._conn.recv()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float | None:
        """User+system CPU time of the server process (Linux /proc), or None."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if self.proc.pid is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._conn.send("stop")
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(3)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(3)
        self._conn.close()


# -- load ----------------------------------------------------------------------------


@dataclass
class LoadResult:
    ops: int = 0
    errors: int = 0
    start: float = 0.0  # time.monotonic(), comparable across processes on one host
    end: float = 0.0
    latencies: list[float] = field(default_factory=list)


def _load_thread(client: Any, tag: str, start: float, deadline: float, out: LoadResult) -> None:
    keys = [f"bench/{tag}/{i:02d}" for i in range(KEYS_PER_THREAD)]
    lat = out.latencies
    clock = time.monotonic
    i = 0
    while clock() < deadline and out.errors < MAX_ERRORS:
        key = keys[i % KEYS_PER_THREAD]
        i += 1
        try:
            t0 = clock()
            client.set(key, VALUE)
            t1 = clock()
            client.get(key)
            t2 = clock()
        except Exception:
            out.errors += 1
            continue
        lat.append(t1 - t0)
        lat.append(t2 - t1)
        out.ops += 2
    out.end = clock()


def run_threads(client: Any, threads: int, start: float, duration: float, tag: str) -> LoadResult:
    """`threads` threads share `client` from `start` for `duration` seconds."""
    parts = [LoadResult(start=start) for _ in range(threads)]
    workers = [
        threading.Thread(target=_load_thread, args=(client, f"{tag}-{n}", start, start + duration, parts[n]))
        for n in range(threads)
    ]
    delay = start - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    for w in workers:
        w.start()
    for w in workers:
        w.join(duration + 30)  # each call has the client's 5 s deadline
    return merge(parts)


def merge(parts: list[LoadResult]) -> LoadResult:
    total = LoadResult(start=min(p.start for p in parts), end=max(p.end for p in parts))
    for p in parts:
        total.ops += p.ops
        total.errors += p.errors
        total.latencies.extend(p.latencies)
    return total


def _warm(client: Any, seconds: float = 0.3) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        client.set("bench/warm", VALUE)
        client.get("bench/warm")


def _loader_main(conn: Connection, index: int) -> None:
    """A client-load child: one KeyValueClient per target, 1 thread of load on request."""
    _arm_lifetime_cap()
    from kvgrpc.client import KeyValueClient

    clients: dict[str, Any] = {}
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return
            if msg[0] == "warm":
                client = clients.setdefault(msg[1], KeyValueClient(msg[1]))
                _warm(client)
                conn.send("ok")
            elif msg[0] == "run":
                _, target, start, duration = msg
                conn.send(run_threads(clients[target], 1, start, duration, f"p{index}"))
            else:
                return
    finally:
        for client in clients.values():
            client.close()


class LoaderPool:
    def __init__(self, size: int) -> None:
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for n in range(size):
            parent_conn, child_conn = CTX.Pipe()
            proc = CTX.Process(target=_loader_main, args=(child_conn, n), name=f"bench-loader-{n}", daemon=True)
            proc.start()
            child_conn.close()
            self.conns.append(parent_conn)
            self.procs.append(proc)

    def _gather(self, timeout: float) -> list[Any]:
        replies = []
        for conn in self.conns:
            if not conn.poll(timeout):
                raise RuntimeError("a loader process did not answer in time")
            replies.append(conn.recv())
        return replies

    def warm(self, target: str) -> None:
        for conn in self.conns:
            conn.send(("warm", target))
        self._gather(60)

    def run(self, target: str, duration: float) -> LoadResult:
        start = time.monotonic() + 0.2
        for conn in self.conns:
            conn.send(("run", target, start, duration))
        return merge(self._gather(duration + 40))

    def stop(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("stop",))
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(3)
            if proc.is_alive():
                proc.kill()
                proc.join(3)


# -- measurement and report --------------------------------------------------------------


@dataclass
class Sample:
    ops_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_op: float | None
    errors: int


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * (len(sorted_values) - 1) + 0.5))]


def measure(server: ServerProc, load: str, duration: float, clients: dict[str, Any], pool: LoaderPool) -> Sample:
    cpu0 = server.cpu_seconds()
    if load == "1 thread":
        result = run_threads(clients[server.name], 1, time.monotonic(), duration, "t")
    elif load == "8 threads":
        result = run_threads(clients[server.name], 8, time.monotonic(), duration, "t")
    else:
        result = pool.run(server.target, duration)
    cpu1 = server.cpu_seconds()
    elapsed = max(result.end - result.start, 1e-9)
    lat = sorted(result.latencies)
    cpu = None if cpu0 is None or cpu1 is None or not result.ops else (cpu1 - cpu0) / result.ops * 1e6
    return Sample(result.ops / elapsed, pct(lat, 0.50) * 1e3, pct(lat, 0.99) * 1e3, cpu, result.errors)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def row(label: str, load: str, samples: list[Sample]) -> str:
    ops = [s.ops_s for s in samples]
    cpus = [s.cpu_us_op for s in samples if s.cpu_us_op is not None]
    cpu = f"{median(cpus):8.0f}" if cpus else "     n/a"
    return (
        f"{label:<10} {load:<11} {median(ops):9.0f} {min(ops):9.0f}-{max(ops):<9.0f}"
        f" {median([s.p50_ms for s in samples]):7.3f} {median([s.p99_ms for s in samples]):7.3f}"
        f" {cpu} {sum(s.errors for s in samples):6d}"
    )


HEADER = (
    f"{'server':<10} {'load':<11} {'ops/s':>9} {'range (rounds)':^19} {'p50 ms':>7} {'p99 ms':>7}"
    f" {'srvCPU':>8} {'errors':>6}\n"
    f"{'':<10} {'':<11} {'median':>9} {'':^19} {'median':>7} {'median':>7} {'us/op':>8}"
)

LOADS = ("1 thread", "8 threads", "4 procs")


def check_same_behaviour(clients: dict[str, Any]) -> None:
    """Both models answer a hit and a miss alike (exercises the aio abort path)."""
    from kvgrpc.errors import KVNotFoundError

    for name, client in clients.items():
        client.set("bench/check", VALUE)
        assert client.get("bench/check") == VALUE, name
        try:
            client.get("bench/missing-key")
        except KVNotFoundError:
            continue
        raise AssertionError(f"{name}: a missing key did not raise KVNotFoundError")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--workers", type=int, default=16, help="sync workers in the sync-vs-aio runs (default 16)")
    args = parser.parse_args()
    if not 0.2 <= args.duration <= 10 or not 1 <= args.rounds <= 5:
        parser.error("--duration must be 0.2..10 and --rounds 1..5 (the run is kept to a few minutes)")

    # SIGTERM/SIGINT end the run through `finally`, which stops every child.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import grpc

    from kvgrpc.client import KeyValueClient

    sweep = sorted({4, 16, 64})
    servers = {f"sync-w{args.workers}": ServerProc(f"sync-w{args.workers}", "sync", args.workers)}
    servers["aio"] = ServerProc("aio", "aio", None)
    for w in sweep:
        servers.setdefault(f"sync-w{w}", ServerProc(f"sync-w{w}", "sync", w))
    sync_name = f"sync-w{args.workers}"

    print(
        f"kvgrpc server model bench: python {platform.python_version()}, grpcio {grpc.__version__}, "
        f"{os.cpu_count()} CPUs, {args.rounds} rounds x {args.duration:g}s, set+get of 16-byte values",
        flush=True,
    )
    t_begin = time.monotonic()
    clients: dict[str, Any] = {}
    pool: LoaderPool | None = None
    try:
        for s in servers.values():
            s.start()
        pool = LoaderPool(4)
        for s in servers.values():
            s.wait_port()
            clients[s.name] = KeyValueClient(s.target)
            _warm(clients[s.name])
        check_same_behaviour(clients)
        for s in servers.values():
            pool.warm(s.target)

        ab: dict[tuple[str, str], list[Sample]] = {}
        ratios: dict[str, list[float]] = {load: [] for load in LOADS}
        for r in range(args.rounds):
            for load in LOADS:
                pair = []
                for name in (sync_name, "aio"):
                    sample = measure(servers[name], load, args.duration, clients, pool)
                    ab.setdefault((name, load), []).append(sample)
                    pair.append(sample.ops_s)
                    print(
                        f"  round {r + 1} {name:<9} {load:<10} {sample.ops_s:8.0f} ops/s "
                        f"p50 {sample.p50_ms:.3f} ms p99 {sample.p99_ms:.3f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
                ratios[load].append(pair[1] / pair[0] if pair[0] else float("nan"))

        wk: dict[str, list[Sample]] = {}
        for r in range(args.rounds):
            for w in sweep:
                name = f"sync-w{w}"
                sample = measure(servers[name], "8 threads", args.duration, clients, pool)
                wk.setdefault(name, []).append(sample)
                print(f"  round {r + 1} {name:<9} 8 threads  {sample.ops_s:8.0f} ops/s", file=sys.stderr, flush=True)
    finally:
        for client in clients.values():
            client.close()
        if pool is not None:
            pool.stop()
        for s in servers.values():
            s.stop()

    print(f"\nA/B: sync (create_server, workers={args.workers}) vs grpc.aio, interleaved per round")
    print(HEADER)
    for load in LOADS:
        for name in (sync_name, "aio"):
            print(row(name, load, ab[(name, load)]))
    print("\naio/sync throughput ratio (median of per-round paired ratios; per-round values)")
    for load in LOADS:
        per_round = " ".join(f"{x:.2f}" for x in ratios[load])
        print(f"  {load:<10} {median(ratios[load]):.2f}   [{per_round}]")
    print("\nsync worker sweep, 8 client threads sharing one client, interleaved per round")
    print(HEADER)
    for w in sweep:
        print(row(f"sync-w{w}", "8 threads", wk[f"sync-w{w}"]))
    print(f"\ntotal wall time {time.monotonic() - t_begin:.0f}s")
    print("srvCPU = server process user+sys CPU per op (both models share 2 cores with the client load)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
