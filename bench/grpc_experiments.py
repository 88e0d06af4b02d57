"""grpc core experiments (GRPC_EXPERIMENTS) on the kvgrpc server, A/B.

Each configuration is a separate `kvgrpc serve` on one SQLite file with the
experiment list in its environment; 1 and 8 client processes do set+get,
interleaved over the configurations, and medians are compared with the
default. Usage:

    .venv/bin/python bench/grpc_experiments.py [--rounds 3] [--duration 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile

from reuse_port import measure, start

CONFIGS = {
    "default": "",
    "event_engine_callback_cq": "event_engine_callback_cq",
    "pollset_alternative": "pollset_alternative",
    "prioritize_finished_requests": "prioritize_finished_requests",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=2.0)
    args = parser.parse_args()
    results: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        store = f"sqlite:///{directory}/kv.sqlite3"
        servers = {
            name: start(store, "127.0.0.1:0", env={"GRPC_EXPERIMENTS": flags}) for name, flags in CONFIGS.items()
        }
        try:
            for _ in range(args.rounds):
                for clients in (1, 8):
                    for name, (_proc, port) in servers.items():
                        ops = measure(f"127.0.0.1:{port}", args.duration, clients)
                        results.setdefault((name, clients), []).append(ops)
        finally:
            for proc, _port in servers.values():
                proc.terminate()
            for proc, _port in servers.values():
                proc.wait(30)
    print(f"SQLite store, set+get, {args.rounds} x {args.duration}s interleaved; ratio to the default")
    for clients in (1, 8):
        base = statistics.median(results[("default", clients)])
        for name in CONFIGS:
            median = statistics.median(results[(name, clients)])
            print(f"  {clients} client(s)  {name:30} {median:7.0f} ops/s  {median / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
