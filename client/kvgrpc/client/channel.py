"""Channel settings shared by the client and the server.

Keepalive is set on both sides from these numbers so that they agree: a
client that pings more often than the server permits is sent GOAWAY
(`too_many_pings`) and loses its connection.
"""

from __future__ import annotations

import json

SERVICE = "kvgrpc.v1.KeyValue"

KEEPALIVE_TIME_MS = 30_000  # the client pings an idle connection this often...
KEEPALIVE_TIMEOUT_MS = 10_000  # ...and drops it if the ping is not answered in time
MIN_PING_INTERVAL_MS = 10_000  # the server accepts pings this often (below the client's)

# Calls that may be repeated without changing their outcome. A conditional
# write (SetIfNotExists, DeleteIfValueMatches, Delete, Expire) is not among
# them: if the first attempt landed, a retry would report False or NOT_FOUND
# to a caller whose write in fact succeeded.
RETRYABLE_METHODS = ("Get", "Set", "Exists", "ListKeys", "GetTtl")


def service_config(*, max_attempts: int = 4) -> str:
    """The gRPC service config: retry safe calls on UNAVAILABLE only."""
    config = {
        "methodConfig": [
            {
                "name": [{"service": SERVICE, "method": method} for method in RETRYABLE_METHODS],
                "retryPolicy": {
                    "maxAttempts": max_attempts,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
    return json.dumps(config)


def client_options(*, max_receive_bytes: int) -> list[tuple[str, object]]:
    return [
        ("grpc.service_config", service_config()),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.max_receive_message_length", max_receive_bytes),
    ]


def server_options(*, max_message_bytes: int) -> list[tuple[str, object]]:
    return [
        # grpcio enables SO_REUSEPORT by default, which lets a second server
        # silently share a port that is already taken; we want that to fail.
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", MIN_PING_INTERVAL_MS),
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_PING_INTERVAL_MS),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
