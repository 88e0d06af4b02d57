"""Health follows the store: NOT_SERVING while a networked store (Redis) is
unreachable, SERVING again once it answers, with no restart needed.

Stores that can be unreachable offer `ping()`, raising `KVUnavailableError`
when they are; in-process stores have nothing to watch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from grpc_health.v1 import health, health_pb2

from kvgrpc.errors import KVUnavailableError

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@runtime_checkable
class Pingable(Protocol):
    def ping(self) -> None: ...


class StoreHealthMonitor:
    """Pings the store every `interval` seconds and sets health to match."""

    def __init__(
        self, store: Pingable, servicer: health.HealthServicer, services: Iterable[str], interval: float
    ) -> None:
        self._store = store
        self._servicer = servicer
        self._services = tuple(services)
        self._interval = interval
        self._stopped = threading.Event()
        self._reachable: bool | None = None
        self._thread = threading.Thread(target=self._run, name="kvgrpc-store-health", daemon=True)

    def start(self) -> None:
        self.check()
        self._thread.start()

    def check(self) -> bool:
        """Ping once, update health, and return whether the store answered."""
        try:
            self._store.ping()
            reachable = True
        except KVUnavailableError as err:
            reachable = False
            reason = str(err)
        if reachable != self._reachable:
            if reachable:
                log.info("store reachable: SERVING", extra={"event": "store_up"})
            else:
                log.warning("store unreachable: NOT_SERVING (%s)", reason, extra={"event": "store_down"})
        self._reachable = reachable
        for name in self._services:
            self._servicer.set(name, SERVING if reachable else NOT_SERVING)
        return reachable

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.check()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()
