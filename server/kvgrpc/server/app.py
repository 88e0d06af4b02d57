"""Building the server (`create_server`) apart from running it (`serve`)."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from kvgrpc.client.channel import SERVICE, server_options
from kvgrpc.ports import IKeyValueAdapter
from kvgrpc.server.servicer import KeyValueServicer, Limits, add_to_server
from kvgrpc.server.stores import open_store

log = logging.getLogger("kvgrpc.server")

_ENVELOPE_BYTES = 64 * 1024  # room for a request's key and framing beside its value


@dataclass(frozen=True)
class ServerConfig:
    """Everything `kvgrpc serve` can be told; the CLI fills it from flags and env."""

    listen: str = "127.0.0.1:50051"
    store: str = "sqlite:///data/kv.sqlite3"
    grace: float = 10.0
    max_key_bytes: int = 4096
    max_value_bytes: int = 1024 * 1024
    sweep_interval: float = 5.0
    workers: int = 16


@dataclass
class RunningServer:
    """A started server: the grpc server, the port it bound, its health service."""

    server: grpc.Server
    port: int
    health: health.HealthServicer

    def shutdown(self, grace: float) -> None:
        """Go NOT_SERVING, let in-flight calls finish within `grace`, stop."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def create_server(config: ServerConfig, store: IKeyValueAdapter) -> RunningServer:
    """Build and start a server for `store` on `config.listen` (port 0: any free port)."""
    limits = Limits(max_key_bytes=config.max_key_bytes, max_value_bytes=config.max_value_bytes)
    max_message = config.max_value_bytes + config.max_key_bytes + _ENVELOPE_BYTES
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="kvgrpc-rpc"),
        options=server_options(max_message_bytes=max_message),
    )
    add_to_server(KeyValueServicer(store, limits), server)

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    try:
        port = server.add_insecure_port(config.listen)
    except RuntimeError as err:
        raise OSError(f"cannot listen on {config.listen}: {err}") from None
    server.start()
    for name in ("", SERVICE):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, port, health_servicer)


def bound_address(listen: str, port: int) -> str:
    """`listen` with its port replaced by the one actually bound."""
    host = listen.rsplit(":", 1)[0]
    return f"{host}:{port}"


def serve(config: ServerConfig) -> int:
    """Run until SIGTERM or SIGINT, then drain gracefully; return the exit code."""
    store = open_store(config.store, sweep_interval=config.sweep_interval)
    try:
        running = create_server(config, store)
    except BaseException:
        store.close()
        raise
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    log.info(
        "kvgrpc serving on %s store=%s workers=%d",
        bound_address(config.listen, running.port),
        config.store,
        config.workers,
    )
    stop.wait()
    log.info("received %s: draining for up to %ss", signal.Signals(received[0]).name, config.grace)
    running.shutdown(config.grace)
    store.close()
    log.info("kvgrpc stopped")
    return 0
