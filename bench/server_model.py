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
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper modules beside this file

from _drivers import SetGetDriver
from _load import CTX, LoaderPool, run_threads
from _procs import cpu_seconds, stop_process
from _report import median, median_columns, summarize

VALUE = SetGetDriver.value
CHILD_LIFETIME = 600.0  # seconds; a child never outlives this even if orphaned


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
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.pid is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._conn.send("stop")
        stop_process(self.proc)
        self._conn.close()


# -- measurement and report --------------------------------------------------------------


def measure(
    server: ServerProc, load: str, duration: float, drivers: dict[str, SetGetDriver], pool: LoaderPool
) -> dict[str, Any]:
    cpu0 = server.cpu_seconds()
    if load == "1 thread":
        result = run_threads(drivers[server.name], "set+get", 1, 0, duration, "t")
    elif load == "8 threads":
        result = run_threads(drivers[server.name], "set+get", 8, 0, duration, "t")
    else:
        result = pool.run(("setget", server.target), "set+get", 0, duration)
    cpu1 = server.cpu_seconds()
    return summarize(result, None if cpu0 is None or cpu1 is None else cpu1 - cpu0)


def row(label: str, load: str, samples: list[dict[str, Any]]) -> str:
    return f"{label:<10} {load:<11} {median_columns(samples)} {sum(s['errors'] for s in samples):6d}"


HEADER = (
    f"{'server':<10} {'load':<11} {'ops/s':>9} {'range (rounds)':^19} {'p50 ms':>7} {'p99 ms':>7}"
    f" {'srvCPU':>8} {'errors':>6}\n"
    f"{'':<10} {'':<11} {'median':>9} {'':^19} {'median':>7} {'median':>7} {'us/op':>8}"
)

LOADS = ("1 thread", "8 threads", "4 procs")


def check_same_behaviour(drivers: dict[str, SetGetDriver]) -> None:
    """Both models answer a hit and a miss alike (exercises the aio abort path)."""
    from kvgrpc.errors import KVNotFoundError

    for name, client in ((name, driver.kv) for name, driver in drivers.items()):
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
    drivers: dict[str, SetGetDriver] = {}
    pool: LoaderPool | None = None
    try:
        for s in servers.values():
            s.start()
        pool = LoaderPool(4, CHILD_LIFETIME)
        for s in servers.values():
            s.wait_port()
            drivers[s.name] = SetGetDriver(s.target)
            drivers[s.name].warm()
        check_same_behaviour(drivers)
        for s in servers.values():
            pool.prepare(("setget", s.target))

        ab: dict[tuple[str, str], list[dict[str, Any]]] = {}
        ratios: dict[str, list[float]] = {load: [] for load in LOADS}
        for r in range(args.rounds):
            for load in LOADS:
                pair = []
                for name in (sync_name, "aio"):
                    sample = measure(servers[name], load, args.duration, drivers, pool)
                    ab.setdefault((name, load), []).append(sample)
                    pair.append(sample["ops_s"])
                    print(
                        f"  round {r + 1} {name:<9} {load:<10} {sample['ops_s']:8.0f} ops/s "
                        f"p50 {sample['p50_ms']:.3f} ms p99 {sample['p99_ms']:.3f} ms",
                        file=sys.stderr,
                        flush=True,
                    )
                ratios[load].append(pair[1] / pair[0] if pair[0] else float("nan"))

        wk: dict[str, list[dict[str, Any]]] = {}
        for r in range(args.rounds):
            for w in sweep:
                name = f"sync-w{w}"
                sample = measure(servers[name], "8 threads", args.duration, drivers, pool)
                wk.setdefault(name, []).append(sample)
                print(f"  round {r + 1} {name:<9} 8 threads  {sample['ops_s']:8.0f} ops/s", file=sys.stderr, flush=True)
    finally:
        for driver in drivers.values():
            driver.close()
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
