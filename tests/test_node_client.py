"""A non-Python client: examples/node/kvgrpc-client.js, on @grpc/grpc-js, loads
the .proto at run time, calls every RPC against a real `kvgrpc serve` and
checks the status codes and google.rpc.ErrorInfo details of its errors."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import google.rpc.status_pb2

from components import ROOT, require
from serverproc import ServerProcess

NODE_DIR = ROOT / "examples" / "node"
SCRIPT = NODE_DIR / "kvgrpc-client.js"

# googleapis-common-protos (a dependency of grpcio-status) installs
# google/rpc/status.proto and error_details.proto next to its _pb2 modules;
# the Node program reads them from there at run time.
GOOGLEAPIS_PROTOS = Path(google.rpc.status_pb2.__file__).resolve().parents[2]

# The checks the Node program reports, in order, one `ok ...` line each.
EXPECTED_CHECKS = [
    "keyvalue.proto loaded at run time declares the 10 RPCs of kvgrpc.v1.KeyValue",
    "Set then Get returns the same bytes",
    "Get of a key set to an empty value returns empty bytes",
    "Set replaces an existing value",
    "Exists is true for a set key and false for a missing one",
    "SetIfNotExists inserts once, then reports inserted=false and leaves the value",
    "DeleteIfValueMatches removes only a key holding that value",
    "Delete removes a key",
    "Delete of a missing key fails with NOT_FOUND, ErrorInfo reason KEY_NOT_FOUND",
    "ListKeys pages with limit=2 and next_after: [2, 2, 1] keys in code point order, then no next_after",
    "ListKeys with the default limit returns every key under the prefix and no next_after",
    "ListKeys returns only keys strictly after `after`",
    "GetTtl of a key set without a TTL has no ttl_seconds",
    "GetTtl of a key set with ttl_seconds=60 is 1..60",
    "Expire without if_value sets the TTL (updated=true, GetTtl 1..100)",
    "Expire with a non-matching if_value changes nothing (updated=false)",
    "Expire with the matching if_value renews the TTL (updated=true, GetTtl 201..300)",
    "Expire without ttl_seconds removes the expiry (GetTtl has no ttl_seconds)",
    "Expire of a missing key reports updated=false",
    "Batch answers each operation in order, a failed one with its own NOT_FOUND error",
    "Get of a missing key fails with NOT_FOUND",
    "NOT_FOUND carries google.rpc.Status with the same code and an ErrorInfo detail",
    'NOT_FOUND ErrorInfo: reason "KEY_NOT_FOUND", domain "kvgrpc", metadata key',
    "GetTtl of a missing key fails with NOT_FOUND, ErrorInfo reason KEY_NOT_FOUND",
    "Set with an empty key fails with INVALID_ARGUMENT",
    'INVALID_ARGUMENT ErrorInfo: reason "INVALID_KEY", domain "kvgrpc", metadata field "key"',
    "Get with an empty key fails with INVALID_ARGUMENT, ErrorInfo reason INVALID_KEY",
    "Delete of every key of this run leaves none under its prefix",
    "every RPC of kvgrpc.v1.KeyValue was called",
]


def run_node_client(target: str) -> subprocess.CompletedProcess[str]:
    node = require("node", "node", "install Node.js 18 or later")
    require(
        NODE_DIR / "node_modules" / "@grpc" / "grpc-js" / "package.json",
        "@grpc/grpc-js",
        "run `npm ci --prefix examples/node`; `make test` does it when npm is installed",
    )
    for name in ("status.proto", "error_details.proto"):
        assert (GOOGLEAPIS_PROTOS / "google" / "rpc" / name).is_file(), f"googleapis-common-protos ships no {name}"
    return subprocess.run(
        [node, str(SCRIPT), target, "--googleapis-protos", str(GOOGLEAPIS_PROTOS)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_node_client_calls_every_rpc_and_reads_error_info():
    with ServerProcess("memory://") as server:
        result = run_node_client(server.target)
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, output
    lines = result.stdout.splitlines()
    assert [line.removeprefix("ok ") for line in lines if line.startswith("ok ")] == EXPECTED_CHECKS, output
    assert lines[-1] == f"all {len(EXPECTED_CHECKS)} checks passed", output
    assert not [line for line in lines if line.startswith("FAIL")], output


def test_node_client_fails_when_no_server_is_listening():
    # A bound socket that never listens: the port stays ours, and every
    # connection to it is refused.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        result = run_node_client(f"127.0.0.1:{unused.getsockname()[1]}")
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 1, output
    assert "FAIL Set " in result.stdout, output
    assert "UNAVAILABLE" in result.stdout, output
    assert "checks passed" not in result.stdout, output
