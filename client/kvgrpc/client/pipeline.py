"""`KVPipeline`: many operations in one Batch call, like a Redis pipeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kvgrpc.client.errors import error_for
from kvgrpc.errors import KVError, KVNotFoundError
from kvgrpc.ports import request_id_or_new
from kvgrpc.v1 import keyvalue_pb2 as pb
from kvgrpc.validation import ValueLike, check_key, check_optional_ttl, to_bytes

if TYPE_CHECKING:
    from kvgrpc.client.keyvalue import KeyValueClient

MAX_BATCH_OPERATIONS = 1000


class KVPipeline:
    """Queue operations, then `execute()` sends them in one Batch call.

    Each queued method takes the arguments of the client's method of the same
    name; `execute()` returns their results in order. Operations keep their
    own atomicity (and conditional writes their request ids, so the batch is
    retried safely); the batch as a whole is not a transaction. With
    `raise_on_error=True` the first failed operation's exception is raised
    after all have run; otherwise failed operations' exceptions stand in the
    list in place of results.
    """

    def __init__(self, client: KeyValueClient) -> None:
        self._client = client
        self._operations: list[pb.BatchOperation] = []
        self._readers: list[Callable[[Any], Any]] = []

    def __len__(self) -> int:
        return len(self._operations)

    def _queue(self, reader: Callable[[Any], Any], **operation: Any) -> KVPipeline:
        if len(self._operations) >= MAX_BATCH_OPERATIONS:
            raise ValueError(f"a pipeline holds at most {MAX_BATCH_OPERATIONS} operations: execute() first")
        self._operations.append(pb.BatchOperation(**operation))
        self._readers.append(reader)
        return self

    def get(self, key: str) -> KVPipeline:
        return self._queue(lambda r: r.get.value, get=pb.GetRequest(key=check_key(key)))

    def set(self, key: str, value: ValueLike, ttl: int | None = None) -> KVPipeline:
        request = pb.SetRequest(key=check_key(key), value=to_bytes(value), ttl_seconds=check_optional_ttl(ttl))
        return self._queue(lambda r: None, set=request)

    def set_if_not_exists(
        self, key: str, value: ValueLike, ttl: int | None = None, *, request_id: str | None = None
    ) -> KVPipeline:
        request = pb.SetIfNotExistsRequest(
            key=check_key(key),
            value=to_bytes(value),
            ttl_seconds=check_optional_ttl(ttl),
            request_id=request_id_or_new(request_id),
        )
        return self._queue(lambda r: r.set_if_not_exists.inserted, set_if_not_exists=request)

    def delete(self, key: str, *, request_id: str | None = None) -> KVPipeline:
        return self._queue(
            lambda r: None, delete=pb.DeleteRequest(key=check_key(key), request_id=request_id_or_new(request_id))
        )

    def delete_if_value_matches(self, key: str, value: ValueLike, *, request_id: str | None = None) -> KVPipeline:
        request = pb.DeleteIfValueMatchesRequest(
            key=check_key(key), value=to_bytes(value), request_id=request_id_or_new(request_id)
        )
        return self._queue(lambda r: r.delete_if_value_matches.deleted, delete_if_value_matches=request)

    def exists(self, key: str) -> KVPipeline:
        return self._queue(lambda r: r.exists.exists, exists=pb.ExistsRequest(key=check_key(key)))

    def get_ttl(self, key: str) -> KVPipeline:
        def read(result: Any) -> int | None:
            return result.get_ttl.ttl_seconds if result.get_ttl.HasField("ttl_seconds") else None

        return self._queue(read, get_ttl=pb.GetTtlRequest(key=check_key(key)))

    def expire(
        self, key: str, ttl: int | None, *, if_value: ValueLike | None = None, request_id: str | None = None
    ) -> KVPipeline:
        request = pb.ExpireRequest(
            key=check_key(key),
            ttl_seconds=check_optional_ttl(ttl),
            if_value=None if if_value is None else to_bytes(if_value, field="if_value"),
            request_id=request_id_or_new(request_id),
        )
        return self._queue(lambda r: r.expire.updated, expire=request)

    def execute(self, *, raise_on_error: bool = True) -> list[Any]:
        """Send the queued operations in one call; return their results."""
        operations, readers = self._operations, self._readers
        self.reset()
        if not operations:
            return []
        response = self._client._call_once("Batch", pb.BatchRequest(operations=operations))
        results: list[Any] = []
        for operation, reader, result in zip(operations, readers, response.results, strict=True):
            if result.HasField("error"):
                error = result.error
                exc: KVError = error_for(error.code, error.message)
                exc.reason = error.reason or exc.reason
                if isinstance(exc, KVNotFoundError):
                    exc.key = getattr(operation, operation.WhichOneof("operation")).key
                results.append(exc)
            else:
                results.append(reader(result))
        if raise_on_error:
            for result in results:
                if isinstance(result, KVError):
                    raise result
        return results

    def reset(self) -> None:
        self._operations, self._readers = [], []

    def __enter__(self) -> KVPipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.reset()  # like redis-py: leaving the block discards what was not executed
