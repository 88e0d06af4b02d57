"""`KVPipeline`: many operations in one Batch call, like a Redis pipeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kvgrpc.client.errors import from_batch_error
from kvgrpc.errors import KVError
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
        self._request = pb.BatchRequest()  # operations are written into it in place, never copied
        self._readers: list[Callable[[Any], Any]] = []

    def __len__(self) -> int:
        return len(self._readers)

    def _add(self, reader: Callable[[Any], Any]) -> pb.BatchOperation:
        """A new operation slot; call only once the arguments passed their checks."""
        if len(self._readers) >= MAX_BATCH_OPERATIONS:
            raise ValueError(f"a pipeline holds at most {MAX_BATCH_OPERATIONS} operations: execute() first")
        self._readers.append(reader)
        return self._request.operations.add()

    def get(self, key: str) -> KVPipeline:
        key = check_key(key)
        self._add(_read_get).get.key = key
        return self

    def set(self, key: str, value: ValueLike, ttl: int | None = None) -> KVPipeline:
        key, data, ttl = check_key(key), to_bytes(value), check_optional_ttl(ttl)
        request = self._add(_read_nothing).set
        request.key, request.value = key, data
        if ttl is not None:
            request.ttl_seconds = ttl
        return self

    def set_if_not_exists(
        self, key: str, value: ValueLike, ttl: int | None = None, *, request_id: str | None = None
    ) -> KVPipeline:
        key, data, ttl, request_id = (
            check_key(key),
            to_bytes(value),
            check_optional_ttl(ttl),
            request_id_or_new(request_id),
        )
        request = self._add(_read_inserted).set_if_not_exists
        request.key, request.value, request.request_id = key, data, request_id
        if ttl is not None:
            request.ttl_seconds = ttl
        return self

    def delete(self, key: str, *, request_id: str | None = None) -> KVPipeline:
        key, request_id = check_key(key), request_id_or_new(request_id)
        request = self._add(_read_nothing).delete
        request.key, request.request_id = key, request_id
        return self

    def delete_if_value_matches(self, key: str, value: ValueLike, *, request_id: str | None = None) -> KVPipeline:
        key, data, request_id = check_key(key), to_bytes(value), request_id_or_new(request_id)
        request = self._add(_read_deleted).delete_if_value_matches
        request.key, request.value, request.request_id = key, data, request_id
        return self

    def exists(self, key: str) -> KVPipeline:
        key = check_key(key)
        self._add(_read_exists).exists.key = key
        return self

    def get_ttl(self, key: str) -> KVPipeline:
        key = check_key(key)
        self._add(_read_ttl).get_ttl.key = key
        return self

    def expire(
        self, key: str, ttl: int | None, *, if_value: ValueLike | None = None, request_id: str | None = None
    ) -> KVPipeline:
        key, ttl, request_id = check_key(key), check_optional_ttl(ttl), request_id_or_new(request_id)
        expected = None if if_value is None else to_bytes(if_value, field="if_value")
        request = self._add(_read_updated).expire
        request.key, request.request_id = key, request_id
        if ttl is not None:
            request.ttl_seconds = ttl
        if expected is not None:
            request.if_value = expected
        return self

    def execute(self, *, raise_on_error: bool = True) -> list[Any]:
        """Send the queued operations in one call; return their results."""
        request, readers = self._request, self._readers
        self.reset()
        if not readers:
            return []
        response = self._client._call_once("Batch", request)
        results: list[Any] = []
        failed: KVError | None = None
        for index, (reader, result) in enumerate(zip(readers, response.results, strict=True)):
            if result.HasField("error"):
                operation = request.operations[index]
                exc = from_batch_error(result.error, getattr(operation, operation.WhichOneof("operation")).key)
                failed = failed or exc
                results.append(exc)
            else:
                results.append(reader(result))
        if raise_on_error and failed is not None:
            raise failed
        return results

    def reset(self) -> None:
        self._request, self._readers = pb.BatchRequest(), []

    def __enter__(self) -> KVPipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.reset()  # like redis-py: leaving the block discards what was not executed


def _read_nothing(result: pb.BatchResult) -> None:
    return None


def _read_get(result: pb.BatchResult) -> bytes:
    return result.get.value


def _read_inserted(result: pb.BatchResult) -> bool:
    return result.set_if_not_exists.inserted


def _read_deleted(result: pb.BatchResult) -> bool:
    return result.delete_if_value_matches.deleted


def _read_exists(result: pb.BatchResult) -> bool:
    return result.exists.exists


def _read_updated(result: pb.BatchResult) -> bool:
    return result.expire.updated


def _read_ttl(result: pb.BatchResult) -> int | None:
    return result.get_ttl.ttl_seconds if result.get_ttl.HasField("ttl_seconds") else None
