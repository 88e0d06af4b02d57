"""Building the server (`create_server`) apart from running it (`serve`)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from kvgrpc.client.channel import SERVICE, server_options
from kvgrpc.ports import IKeyValueAdapter
from kvgrpc.server.metrics import Metrics
from kvgrpc.server.servicer import KeyValueServicer, Limits, add_to_server
from kvgrpc.server.storehealth import Pingable, StoreHealthMonitor
from kvgrpc.server.stores import open_store, redact

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
    metrics_listen: str | None = None
    health_interval: float = 1.0


@dataclass
class RunningServer:
    """A started server: the grpc server, the port it bound, its health service."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    metrics: Metrics | None = None
    metrics_port: int | None = None
    store_health: StoreHealthMonitor | None = None

    def shutdown(self, grace: float) -> None:
        """Go NOT_SERVING, let in-flight calls finish within `grace`, stop."""
        if self.store_health is not None:
            self.store_health.stop()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self.metrics is not None:
            self.metrics.close()


def create_server(config: ServerConfig, store: IKeyValueAdapter) -> RunningServer:
    """Build and start a server for `store` on `config.listen` (port 0: any free port)."""
    limits = Limits(max_key_bytes=config.max_key_bytes, max_value_bytes=config.max_value_bytes)
    max_message = config.max_value_bytes + config.max_key_bytes + _ENVELOPE_BYTES
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="kvgrpc-rpc"),
        options=server_options(max_message_bytes=max_message),
    )
    metrics = Metrics(store) if config.metrics_listen is not None else None
    add_to_server(KeyValueServicer(store, limits, observe=metrics.observe if metrics else None), server)

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
    running = RunningServer(server, port, health_servicer, metrics)
    if metrics is not None and config.metrics_listen is not None:
        try:
            running.metrics_port = metrics.serve(config.metrics_listen)
        except OSError:
            server.stop(None).wait()
            raise
    if isinstance(store, Pingable):
        running.store_health = StoreHealthMonitor(store, health_servicer, ("", SERVICE), config.health_interval)
        running.store_health.start()
    else:
        for name in ("", SERVICE):
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return running


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
    address = bound_address(config.listen, running.port)
    store_url = redact(config.store)
    metrics = "" if running.metrics_port is None else bound_address(config.metrics_listen or "", running.metrics_port)
    log.info(
        "kvgrpc serving on %s store=%s workers=%d metrics=%s",
        address,
        store_url,
        config.workers,
        metrics or "off",
        extra={"event": "start", "address": address, "store": store_url, "workers": config.workers, "metrics": metrics},
    )
    stop.wait()
    signal_name = signal.Signals(received[0]).name
    log.info(
        "received %s: draining for up to %ss",
        signal_name,
        config.grace,
        extra={"event": "draining", "signal": signal_name, "grace_seconds": config.grace},
    )
    started = time.monotonic()
    running.shutdown(config.grace)
    store.close()
    log.info(
        "kvgrpc stopped after %.2fs",
        time.monotonic() - started,
        extra={"event": "stop", "drain_seconds": round(time.monotonic() - started, 3)},
    )
    return 0
