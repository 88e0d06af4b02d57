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
import contextlib
import ctypes
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VALUE = b"v" * 16
KEYS_PER_THREAD = 64
MAX_ERRORS = 50  # a load loop gives up after this many failed calls
KVGRPC = str(Path(sys.executable).with_name("kvgrpc"))
_LISTENING = re.compile(r"kvgrpc serving on (\S+):(\d+) ")
LOADS = (1, 8)  # client threads


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the bench process dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """A child process whose output is collected in the background."""

    def __init__(self, name: str, command: list[str], cwd: str) -> None:
        self.name = name
        self.output: list[str] = []
        self.listening = threading.Event()
        self.port = 0
        self.proc = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            match = _LISTENING.search(line)
            if match and not self.listening.is_set():
                self.port = int(match.group(2))
                self.listening.set()
        self.listening.set()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_listening(self, timeout: float = 30.0) -> None:
        if not self.listening.wait(timeout) or not self.port:
            raise RuntimeError(f"{self.name} did not start:\n{''.join(self.output)[-3000:]}")

    def cpu_seconds(self) -> float | None:
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(directory: str) -> tuple[Child, int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found on PATH (apt-get install redis-server)")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory]
    command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    child = Child("redis-server", command, directory)
    import redis

    deadline = time.monotonic() + 10
    with contextlib.closing(redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=0.5)) as probe:
        while True:
            try:
                probe.ping()
                return child, port
            except redis.RedisError:
                if time.monotonic() > deadline or child.proc.poll() is not None:
                    child.stop()
                    raise RuntimeError(f"redis-server did not answer:\n{''.join(child.output)[-3000:]}") from None
                time.sleep(0.05)


# -- load ----------------------------------------------------------------------------


@dataclass
class LoadResult:
    ops: int = 0
    errors: int = 0
    start: float = 0.0
    end: float = 0.0
    latencies: list[float] = field(default_factory=list)


def _load_thread(client: Any, tag: str, deadline: float, out: LoadResult) -> None:
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


def run_threads(client: Any, threads: int, duration: float) -> LoadResult:
    start = time.monotonic()
    parts = [LoadResult(start=start) for _ in range(threads)]
    workers = [
        threading.Thread(target=_load_thread, args=(client, f"t{n}", start + duration, parts[n]))
        for n in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(duration + 30)  # each call has the client's 5 s deadline
    total = LoadResult(start=start, end=max(p.end for p in parts))
    for p in parts:
        total.ops += p.ops
        total.errors += p.errors
        total.latencies.extend(p.latencies)
    return total


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


def measure(server: Child, client: Any, threads: int, duration: float, extra_cpu: Child | None) -> Sample:
    def cpu() -> float | None:
        own = server.cpu_seconds()
        other = extra_cpu.cpu_seconds() if extra_cpu is not None else 0.0
        return None if own is None or other is None else own + other

    cpu0 = cpu()
    result = run_threads(client, threads, duration)
    cpu1 = cpu()
    elapsed = max(result.end - result.start, 1e-9)
    lat = sorted(result.latencies)
    cpu_op = None if cpu0 is None or cpu1 is None or not result.ops else (cpu1 - cpu0) / result.ops * 1e6
    return Sample(result.ops / elapsed, pct(lat, 0.50) * 1e3, pct(lat, 0.99) * 1e3, cpu_op, result.errors)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    args = parser.parse_args()
    if not 0.2 <= args.duration <= 5 or not 1 <= args.rounds <= 5:
        parser.error("--duration must be 0.2..5 and --rounds 1..5 (the run is kept under two minutes)")

    # SIGTERM/SIGINT end the run through `finally`, which stops every child.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    workdir = tempfile.mkdtemp(prefix="kvgrpc-bench-stores-")
    children: list[Child] = []
    clients: dict[str, Any] = {}
    t_begin = time.monotonic()
    try:
        redis_child, redis_port = start_redis(workdir)
        children.append(redis_child)
        stores = {
            "memory": "memory://",
            "sqlite": f"sqlite:///{workdir}/kv.sqlite3",
            "redis": f"redis://127.0.0.1:{redis_port}/0",
        }
        servers: dict[str, Child] = {}
        for name, url in stores.items():
            command = [KVGRPC, "serve", "--listen", "127.0.0.1:0", "--store", url, "--log-level", "INFO"]
            servers[name] = Child(f"kvgrpc serve {name}", command, workdir)
            children.append(servers[name])
        for server in servers.values():
            server.wait_listening()

        import grpc

        from kvgrpc.client import KeyValueClient

        print(
            f"kvgrpc store bench: python {platform.python_version()}, grpcio {grpc.__version__}, "
            f"{os.cpu_count()} CPUs, {args.rounds} rounds x {args.duration:g}s, set+get of 16-byte values, "
            "one KeyValueClient per server shared by the load threads",
            flush=True,
        )
        for name, server in servers.items():
            clients[name] = KeyValueClient(server.target)
            warm_until = time.monotonic() + 0.5
            while time.monotonic() < warm_until:
                clients[name].set("bench/warm", VALUE)
                assert clients[name].get("bench/warm") == VALUE

        names = list(stores)
        samples: dict[tuple[str, int], list[Sample]] = {}
        ratios: dict[tuple[str, int], list[float]] = {}
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for threads in LOADS:
                this_round: dict[str, float] = {}
                for name in order:
                    extra = redis_child if name == "redis" else None
                    sample = measure(servers[name], clients[name], threads, args.duration, extra)
                    samples.setdefault((name, threads), []).append(sample)
                    this_round[name] = sample.ops_s
                    print(
                        f"  round {r + 1} {name:<7} {threads} thread(s) {sample.ops_s:8.0f} ops/s "
                        f"p50 {sample.p50_ms:.3f} ms p99 {sample.p99_ms:.3f} ms errors {sample.errors}",
                        file=sys.stderr,
                        flush=True,
                    )
                for name in names:
                    base = this_round["memory"]
                    ratios.setdefault((name, threads), []).append(this_round[name] / base if base else float("nan"))
    finally:
        for client in clients.values():
            client.close()
        for child in reversed(children):
            child.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"\n{'store':<8} {'load':<10} {'ops/s':>9} {'range (rounds)':^19} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'srvCPU':>8} {'x memory':>8} {'errors':>6}"
    )
    for threads in LOADS:
        for name in names:
            rows = samples[(name, threads)]
            ops = [s.ops_s for s in rows]
            cpus = [s.cpu_us_op for s in rows if s.cpu_us_op is not None]
            cpu = f"{median(cpus):8.0f}" if cpus else "     n/a"
            load = f"{threads} thread" + ("s" if threads > 1 else "")
            print(
                f"{name:<8} {load:<10} {median(ops):9.0f} {min(ops):9.0f}-{max(ops):<9.0f}"
                f" {median([s.p50_ms for s in rows]):7.3f} {median([s.p99_ms for s in rows]):7.3f}"
                f" {cpu} {median(ratios[(name, threads)]):8.2f} {sum(s.errors for s in rows):6d}"
            )
    print(f"\ntotal wall time {time.monotonic() - t_begin:.0f}s")
    print(
        "ops/s counts set and get separately; srvCPU = user+sys CPU per op of the kvgrpc server"
        " (plus redis-server for redis); x memory = median of per-round ratios to memory://"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
