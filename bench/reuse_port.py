"""One `kvgrpc serve` process against two sharing the port (--reuse-port).

Both setups serve one SQLite file; 8 client processes do set+get for a few
seconds each, interleaved A B A B, and the medians are compared. Usage:

    .venv/bin/python bench/reuse_port.py [--rounds 3] [--duration 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KVGRPC = str(Path(sys.executable).with_name("kvgrpc"))
CLIENTS = 8


def start(store: str, listen: str, *extra: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [KVGRPC, "serve", "--listen", listen, "--store", store, *extra],
        stderr=subprocess.PIPE,
        text=True,
        env=None if env is None else {**os.environ, **env},
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    match = re.search(r"serving on 127\.0\.0\.1:(\d+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"server did not start: {line}")
    return proc, int(match.group(1))


def client_load(target: str, seconds: float, index: int, out: multiprocessing.Queue) -> None:
    from kvgrpc.client import KeyValueClient

    with KeyValueClient(target) as kv:
        kv.set(f"warm/{index}", b"x")
        done, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            key = f"rp/{index}/{done % 100}"
            kv.set(key, b"v" * 100)
            kv.get(key)
            done += 2
    out.put(done)


def measure(target: str, seconds: float, clients: int = CLIENTS) -> float:
    """set+get ops/s of `clients` client processes against `target`."""
    out: multiprocessing.Queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client_load, args=(target, seconds, i, out)) for i in range(clients)]
    for p in procs:
        p.start()
    total = sum(out.get(timeout=seconds + 60) for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        store = f"sqlite:///{directory}/kv.sqlite3"
        single, single_port = start(store, "127.0.0.1:0")
        first, shared_port = start(store, "127.0.0.1:0", "--reuse-port")
        second, _ = start(store, f"127.0.0.1:{shared_port}", "--reuse-port")
        servers = [single, first, second]
        try:
            results: dict[str, list[float]] = {"1 process": [], "2 processes (--reuse-port)": []}
            for _ in range(args.rounds):
                results["1 process"].append(measure(f"127.0.0.1:{single_port}", args.duration))
                results["2 processes (--reuse-port)"].append(measure(f"127.0.0.1:{shared_port}", args.duration))
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(30)
    base = statistics.median(results["1 process"])
    print(f"SQLite store, {CLIENTS} client processes, set+get, {args.rounds} x {args.duration}s interleaved")
    for name, values in results.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{v:.0f}" for v in values)
        print(f"  {name:28} {median:8.0f} ops/s  ({median / base:.2f}x)  rounds: {rounds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
