"""The floor: the least a Python grpcio key/value server can do per call.

A dict behind one unary RPC, `/floor.Floor/Call`, registered with
`grpc.method_handlers_generic_handler` (and registered, as generated code
does) with no serializers (requests and
replies are raw bytes): `b"g" + key` returns the value (empty if absent),
`b"s" + key + b"\\0" + value` stores it. Same thread pool size as
`kvgrpc serve` (16 workers) and nothing else: no validation, no interceptors,
no health or reflection, no protobuf. kvbench drives it exactly like
kvgrpc, so kvgrpc's own per-call cost shows as a ratio to it.

Run by kvbench as a child: `python bench/_floor.py [--workers N]`; it binds
127.0.0.1:0, logs `floor serving on 127.0.0.1:PORT` on stderr and stops on
SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from concurrent import futures

import grpc

SERVICE = "floor.Floor"
METHOD = f"/{SERVICE}/Call"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args()

    store: dict[bytes, bytes] = {}

    def call(request: bytes, _context: grpc.ServicerContext) -> bytes:
        if request[:1] == b"g":
            return store.get(request[1:], b"")
        key, _, value = request[1:].partition(b"\0")
        store[key] = value
        return b""

    handlers = {"Call": grpc.unary_unary_rpc_method_handler(call)}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    # As generated code (and kvgrpc) do: the method is also registered, so a
    # call is dispatched without a per-call lookup by name.
    server.add_registered_method_handlers(SERVICE, handlers)
    port = server.add_insecure_port("127.0.0.1:0")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    print(f"floor serving on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    stop.wait()
    server.stop(1.0).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
