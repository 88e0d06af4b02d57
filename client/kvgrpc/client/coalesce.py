"""Coalescing: concurrent calls of one client travel together in Batch calls.

A call made while nothing else is in flight goes out on its own, as a plain
unary RPC, so a single-threaded caller pays nothing. Calls made while
another is in flight queue up; a dispatcher thread sends everything queued
as one Batch call and hands each caller its own result. Many threads sharing
one client thus share RPCs instead of queueing behind each other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kvgrpc.client.errors import from_batch_error
from kvgrpc.errors import KVDeadlineExceededError
from kvgrpc.v1 import keyvalue_pb2 as pb

# Unary method -> its field in BatchOperation / BatchResult.
BATCHABLE = {
    "Get": "get",
    "Set": "set",
    "SetIfNotExists": "set_if_not_exists",
    "Delete": "delete",
    "DeleteIfValueMatches": "delete_if_value_matches",
    "Exists": "exists",
    "GetTtl": "get_ttl",
    "Expire": "expire",
}
MAX_BATCH = 1000


class _Slot:
    __slots__ = ("done", "error", "field", "request", "response")

    def __init__(self, field: str, request: Any) -> None:
        self.field = field
        self.request = request
        self.response: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class Coalescer:
    """Sends a client's concurrent calls together. `unary(method, request)`
    and `batch(request)` perform the RPCs (raising kvgrpc errors)."""

    def __init__(
        self, unary: Callable[[str, Any], Any], batch: Callable[[pb.BatchRequest], Any], timeout: float | None
    ) -> None:
        self._unary = unary
        self._batch = batch
        self._wait = None if timeout is None else timeout * 2 + 1  # a queued call waits for up to two RPCs
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: list[_Slot] = []
        self._direct = 0  # unary calls in flight
        self._thread: threading.Thread | None = None
        self._closed = False

    def call(self, method: str, request: Any) -> Any:
        with self._lock:
            alone = self._closed or (self._direct == 0 and not self._pending)
            if alone:
                self._direct += 1
            else:
                slot = _Slot(BATCHABLE[method], request)
                self._pending.append(slot)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._dispatch, name="kvgrpc-coalesce", daemon=True)
                    self._thread.start()
                self._wake.notify()
        if alone:
            try:
                return self._unary(method, request)
            finally:
                with self._lock:
                    self._direct -= 1
        if not slot.done.wait(self._wait):
            raise KVDeadlineExceededError(f"{method} waited {self._wait}s for a batched call")
        if slot.error is not None:
            raise slot.error
        return slot.response

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._closed:
                    self._wake.wait()
                if not self._pending:
                    return
                slots, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            self._send(slots)

    def _send(self, slots: list[_Slot]) -> None:
        try:
            operations = [pb.BatchOperation(**{slot.field: slot.request}) for slot in slots]
            results = self._batch(pb.BatchRequest(operations=operations)).results
            for slot, result in zip(slots, results, strict=True):
                if result.HasField("error"):
                    slot.error = from_batch_error(result.error, slot.request.key)
                else:
                    slot.response = getattr(result, slot.field)
        except BaseException as exc:  # the whole call failed: every caller gets its error
            for slot in slots:
                slot.error = exc
        for slot in slots:
            slot.done.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
