"""Channel settings shared by the client and the server.

Keepalive is set on both sides from these numbers so that they agree: a
client that pings more often than the server permits is sent GOAWAY
(`too_many_pings`) and loses its connection.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence

SERVICE = "kvgrpc.v1.KeyValue"

KEEPALIVE_TIME_MS = 30_000  # the client pings an idle connection this often...
KEEPALIVE_TIMEOUT_MS = 10_000  # ...and drops it if the ping is not answered in time
MIN_PING_INTERVAL_MS = 10_000  # the server accepts pings this often (below the client's)

# Calls that may be repeated without changing their outcome. Conditional
# writes (SetIfNotExists, DeleteIfValueMatches, Delete, Expire) are among
# them only because KeyValueClient always sends them with a request_id: the
# server answers a retry of a write that landed with its first outcome.
# Without the id a retry would report False or NOT_FOUND to a caller whose
# write in fact succeeded.
RETRYABLE_METHODS = (
    "Get",
    "Set",
    "Exists",
    "ListKeys",
    "GetTtl",
    "SetIfNotExists",
    "Delete",
    "DeleteIfValueMatches",
    "Expire",
    "Batch",  # its conditional writes carry request ids too
)
# UNAVAILABLE: unreachable or refusing while it drains. CANCELLED: a server
# shutting down cancels calls it had queued but not yet started.
RETRYABLE_CODES = ["UNAVAILABLE", "CANCELLED"]

# With round_robin a retry is a new pick, so it lands on the next healthy server.


def channel_target(target: str | Sequence[str]) -> str:
    """One gRPC target for a target string or for several server addresses.

    A string is used as it is (``"host:port"``, ``"dns:///name:port"``, ...).
    Several addresses must be IP literals of one family, ``"10.0.0.1:50051"``
    or ``"[::1]:50051"``; they become an ``ipv4:``/``ipv6:`` target that the
    round_robin policy balances over. For host names, use one
    ``dns:///name:port`` target: every address it resolves to is balanced.
    """
    if isinstance(target, str):
        if not target:
            raise ValueError("target must be a non-empty gRPC target such as '127.0.0.1:50051'")
        return target
    addresses = list(target)
    if not addresses or not all(isinstance(a, str) and a for a in addresses):
        raise ValueError("target must be a gRPC target or a non-empty list of 'IP:PORT' addresses")
    if len(addresses) == 1:
        return addresses[0]
    families = set()
    for address in addresses:
        host, _, port = address.rpartition(":")
        try:
            families.add(ipaddress.ip_address(host.strip("[]")).version)
        except ValueError:
            raise ValueError(
                f"{address!r}: several addresses must be IP:PORT literals; for host names pass one "
                "'dns:///name:port' target, which balances over every address the name resolves to"
            ) from None
        if not port.isdigit():
            raise ValueError(f"{address!r} has no port: use IP:PORT")
    if len(families) > 1:
        raise ValueError("several addresses must all be IPv4 or all be IPv6")
    return f"ipv{families.pop()}:" + ",".join(addresses)


def service_config(*, max_attempts: int = 4) -> str:
    """The gRPC service config: balance calls over every server address
    (round_robin), retry calls that are safe to repeat."""
    config = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{"service": SERVICE, "method": method} for method in RETRYABLE_METHODS],
                "retryPolicy": {
                    "maxAttempts": max_attempts,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": RETRYABLE_CODES,
                },
            }
        ],
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


def server_options(*, max_message_bytes: int, reuse_port: bool = False) -> list[tuple[str, object]]:
    return [
        # grpcio enables SO_REUSEPORT by default, which lets a second server
        # silently share a port that is already taken; we want that to fail
        # unless sharing is asked for (several processes on one store).
        ("grpc.so_reuseport", int(reuse_port)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", MIN_PING_INTERVAL_MS),
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_PING_INTERVAL_MS),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
