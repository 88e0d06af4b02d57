"""Building the server (`create_server`) apart from running it (`serve`)."""

from __future__ import annotations

import ipaddress
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
from kvgrpc.server.auth import AuthInterceptor, TokenFileError, TokenTable
from kvgrpc.server.metrics import Metrics
from kvgrpc.server.servicer import KeyValueServicer, Limits, add_to_server
from kvgrpc.server.storehealth import Pingable, StoreHealthMonitor
from kvgrpc.server.stores import open_store, redact
from kvgrpc.server.tls import ReloadableServerCredentials, TLSConfigError, TLSFiles
from kvgrpc.validation import MAX_PAGE_LIMIT

log = logging.getLogger("kvgrpc.server")

_ENVELOPE_BYTES = 64 * 1024  # room for a request's key and framing beside its value
_DRAIN_WINDOW = 0.5  # seconds between going NOT_SERVING and gRPC's stop
_CONNECTION_AGE_GRACE_MS = 30_000  # calls in flight when a connection reaches its age get this long


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
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    auth_tokens: str | None = None
    reflection: str = "token"  # "open", "token" (needs a token when tokens are on), "off"
    insecure: bool = False
    max_page_size: int = 1000
    max_concurrent_rpcs: int | None = None
    max_streams_per_connection: int = 100
    max_connection_age: float = 1800.0
    sqlite_synchronous: str | None = None  # None: the store URL's, else NORMAL
    reuse_port: bool = False  # let several server processes share --listen (SO_REUSEPORT)


@dataclass
class RunningServer:
    """A started server: the grpc server, the port it bound, its health service."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    servicer: KeyValueServicer
    metrics: Metrics | None = None
    metrics_port: int | None = None
    store_health: StoreHealthMonitor | None = None
    tls: ReloadableServerCredentials | None = None
    tokens: TokenTable | None = None

    def reload(self) -> None:
        """Re-read certificates and tokens (SIGHUP). A file that fails to load
        leaves what is in force untouched and raises."""
        if self.tls is not None:
            self.tls.reload()
        if self.tokens is not None:
            self.tokens.reload()

    def shutdown(self, grace: float) -> None:
        """Drain, then stop: health goes NOT_SERVING and new calls get
        UNAVAILABLE (so clients move to another replica) for a short window,
        then gRPC stops taking calls and in-flight ones get the rest of
        `grace` to finish."""
        if self.store_health is not None:
            self.store_health.stop()
        self.health.enter_graceful_shutdown()
        self.servicer.draining = True
        # Calls gRPC has queued but not yet started would be cancelled by
        # stop(); this window lets them be answered UNAVAILABLE instead.
        window = min(_DRAIN_WINDOW, grace / 2)
        time.sleep(window)
        self.server.stop(grace - window).wait()
        if self.metrics is not None:
            self.metrics.close()


class ConfigError(ValueError):
    """A configuration the server refuses to start with; the message says why."""


def is_loopback(listen: str) -> bool:
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or a wildcard such as 0.0.0.0


def check_config(config: ServerConfig) -> None:
    """Refuse settings that do not fit together, and refuse to serve a
    network without TLS or tokens unless told to."""
    host, _, port = config.listen.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--listen must be HOST:PORT with a port from 0 to 65535, not {config.listen!r}")
    if config.reuse_port and config.store.startswith("memory:"):
        raise ConfigError("--reuse-port shares a port between processes; with memory:// each would hold its own keys")
    if not 1 <= config.max_page_size <= MAX_PAGE_LIMIT:
        raise ConfigError(f"--max-page-size must be 1..{MAX_PAGE_LIMIT} (the contract's largest page)")
    if (config.tls_cert is None) != (config.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together: give both or neither")
    if config.tls_client_ca is not None and config.tls_cert is None:
        raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key (mTLS is TLS plus client certificates)")
    protected = config.tls_cert is not None or config.auth_tokens is not None
    if not protected and not config.insecure and not is_loopback(config.listen):
        raise ConfigError(
            f"refusing to serve {config.listen} without TLS or tokens: anyone who can reach it could read and "
            "overwrite every key. Use --tls-cert/--tls-key and/or --auth-tokens, listen on 127.0.0.1, or pass "
            "--insecure if something else secures the traffic (e.g. a mesh sidecar terminating mTLS)"
        )


def create_server(config: ServerConfig, store: IKeyValueAdapter) -> RunningServer:
    """Build and start a server for `store` on `config.listen` (port 0: any free port)."""
    check_config(config)
    limits = Limits(
        max_key_bytes=config.max_key_bytes, max_value_bytes=config.max_value_bytes, max_page_size=config.max_page_size
    )
    max_message = config.max_value_bytes + config.max_key_bytes + _ENVELOPE_BYTES
    tls = None
    if config.tls_cert is not None and config.tls_key is not None:
        tls = ReloadableServerCredentials(TLSFiles(config.tls_cert, config.tls_key, config.tls_client_ca))
    tokens = TokenTable(config.auth_tokens) if config.auth_tokens is not None else None
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    interceptors = []
    if tokens is not None:
        open_services = {health_name} | ({reflection.SERVICE_NAME} if config.reflection == "open" else set())
        interceptors.append(AuthInterceptor(tokens, frozenset(open_services)))
    options = [
        *server_options(max_message_bytes=max_message, reuse_port=config.reuse_port),
        ("grpc.max_concurrent_streams", config.max_streams_per_connection),
        ("grpc.max_connection_age_ms", int(config.max_connection_age * 1000)),
        ("grpc.max_connection_age_grace_ms", _CONNECTION_AGE_GRACE_MS),
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="kvgrpc-rpc"),
        options=options,
        interceptors=interceptors,
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
    )
    metrics = Metrics(store) if config.metrics_listen is not None else None
    servicer = KeyValueServicer(store, limits, observe=metrics.observe if metrics else None)
    add_to_server(servicer, server)

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if config.reflection != "off":
        reflection.enable_server_reflection((SERVICE, health_name, reflection.SERVICE_NAME), server)
    try:
        if tls is not None:
            port = server.add_secure_port(config.listen, tls.credentials)
        else:
            port = server.add_insecure_port(config.listen)
    except RuntimeError as err:
        raise OSError(f"cannot listen on {config.listen}: {err}") from None
    server.start()
    running = RunningServer(server, port, health_servicer, servicer, metrics, tls=tls, tokens=tokens)
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
    check_config(config)  # before the store is opened (and its file created)
    store = open_store(config.store, sweep_interval=config.sweep_interval, sqlite_synchronous=config.sqlite_synchronous)
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

    def on_hangup(_signum: int, _frame: object) -> None:
        try:
            running.reload()
        except (TLSConfigError, TokenFileError) as err:
            log.error("SIGHUP: reload failed, keeping what is in force: %s", err, extra={"event": "reload_failed"})
        else:
            log.info("SIGHUP: reloaded certificates and tokens", extra={"event": "reloaded"})

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    address = bound_address(config.listen, running.port)
    store_url = redact(config.store)
    metrics = "" if running.metrics_port is None else bound_address(config.metrics_listen or "", running.metrics_port)
    security = "+".join(
        name
        for name, on in (("mtls" if config.tls_client_ca else "tls", running.tls), ("tokens", running.tokens))
        if on is not None
    ) or ("insecure" if config.insecure else "loopback-only")
    log.info(
        "kvgrpc serving on %s store=%s workers=%d metrics=%s security=%s",
        address,
        store_url,
        config.workers,
        metrics or "off",
        security,
        extra={
            "event": "start",
            "address": address,
            "store": store_url,
            "workers": config.workers,
            "metrics": metrics,
            "security": security,
        },
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
