"""The KeyValue servicer: check the request, call the adapter, build the reply.

Nothing else happens here: no locking (the adapter owns its lock), no status
codes (errors.STATUS_TABLE maps exceptions to them).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from kvgrpc.errors import KVInvalidArgumentError, KVUnavailableError
from kvgrpc.ports import IKeyValueAdapter
from kvgrpc.server.auth import current_scope
from kvgrpc.server.errors import RpcError, abort, status_for
from kvgrpc.v1 import keyvalue_pb2 as pb
from kvgrpc.validation import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, check_key, check_limit, check_optional_ttl

SERVICE_DESCRIPTOR = pb.DESCRIPTOR.services_by_name["KeyValue"]

log = logging.getLogger(__name__)

# Expected verdicts are routine; anything else deserves attention.
_LOG_LEVELS = {
    grpc.StatusCode.NOT_FOUND: logging.DEBUG,
    grpc.StatusCode.INVALID_ARGUMENT: logging.INFO,
    grpc.StatusCode.UNAVAILABLE: logging.WARNING,
}

_Request = TypeVar("_Request", bound=Message)


@dataclass(frozen=True)
class Limits:
    """Request limits, checked before the adapter is called."""

    max_key_bytes: int = 4096
    max_value_bytes: int = 1024 * 1024
    max_page_size: int = MAX_PAGE_LIMIT


class _MalformedRequest:
    """Stands in for a request whose bytes did not parse (e.g. invalid UTF-8
    in a string field), so the call can fail with INVALID_ARGUMENT rather
    than grpcio's generic INTERNAL."""

    def __init__(self, message_type: str, error: str) -> None:
        self.message_type = message_type
        self.error = error


def _shutting_down() -> KVUnavailableError:
    exc = KVUnavailableError("server is shutting down; retry on another replica")
    exc.reason = "SHUTTING_DOWN"
    return exc


def _rpc(method: Callable[[KeyValueServicer, Any], Message]) -> Callable[..., Message]:
    """Wrap a servicer method: reject malformed requests, translate errors,
    and report every call's outcome (metrics, one log line per failure)."""
    name = method.__name__

    @functools.wraps(method)
    def handle(self: KeyValueServicer, request: Any, context: grpc.ServicerContext) -> Message:
        started = time.perf_counter()
        try:
            if self.draining:
                raise _shutting_down()  # a fresh exception: calls on other threads raise their own
            if isinstance(request, _MalformedRequest):
                raise KVInvalidArgumentError(
                    f"request is not a valid {request.message_type}: {request.error} "
                    "(string fields such as key must be valid UTF-8)",
                    reason="MALFORMED_REQUEST",
                )
            response = method(self, request)
        except Exception as exc:
            error = status_for(exc)
            self._failed(name, error, exc)
            if self._observe is not None:
                self._observe(name, error.code.name, time.perf_counter() - started)
            abort(context, error)
        if self._observe is not None:
            self._observe(name, "OK", time.perf_counter() - started)
        return response

    return handle


class KeyValueServicer:
    """Serves kvgrpc.v1.KeyValue from any `IKeyValueAdapter`."""

    def __init__(
        self,
        adapter: IKeyValueAdapter,
        limits: Limits = Limits(),
        observe: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self._adapter = adapter
        self._limits = limits
        self._observe = observe  # (method, status code name, seconds) after every call
        self.draining = False  # set on shutdown: new calls get UNAVAILABLE and go elsewhere

    @staticmethod
    def _failed(method: str, error: RpcError, exc: Exception) -> None:
        """One log line per failed call: what failed and why, never a key or value."""
        fields = {"method": method, "code": error.code.name, "reason": error.reason}
        if "field" in error.metadata:
            fields["field"] = error.metadata["field"]
        if error.code is grpc.StatusCode.INTERNAL:
            log.error("%s failed unexpectedly", method, exc_info=exc, extra=fields)
        else:
            level = _LOG_LEVELS.get(error.code, logging.WARNING)
            log.log(level, "%s failed: %s %s", method, error.code.name, error.reason, extra=fields)

    # -- request checks ---------------------------------------------------------

    def _key(self, key: str, field: str = "key") -> str:
        check_key(key, field=field)
        self._check_size(key, field)
        current_scope.get().check(key, field)
        return key

    def _check_size(self, text: str, field: str) -> None:
        limit = self._limits.max_key_bytes
        # A character is at most 4 UTF-8 bytes: short strings need no encoding.
        if len(text) * 4 > limit and len(text.encode("utf-8")) > limit:
            raise KVInvalidArgumentError(
                f"{field} is {len(text.encode('utf-8'))} bytes of UTF-8; the maximum is {limit} (--max-key-bytes)",
                reason="KEY_TOO_LONG",
                field=field,
            )

    def _value(self, value: bytes, field: str = "value") -> bytes:
        if len(value) > self._limits.max_value_bytes:
            raise KVInvalidArgumentError(
                f"{field} is {len(value)} bytes; the maximum is {self._limits.max_value_bytes} (--max-value-bytes)",
                reason="VALUE_TOO_LARGE",
                field=field,
            )
        return value

    def _limit(self, limit: int) -> int:
        if not limit:
            return min(DEFAULT_PAGE_LIMIT, self._limits.max_page_size)
        check_limit(limit)
        if limit > self._limits.max_page_size:
            raise KVInvalidArgumentError(
                f"limit is {limit}; this server's maximum page size is {self._limits.max_page_size} (--max-page-size)",
                reason="INVALID_LIMIT",
                field="limit",
            )
        return limit

    @staticmethod
    def _ttl(request: Message) -> int | None:
        ttl = request.ttl_seconds if request.HasField("ttl_seconds") else None  # type: ignore[attr-defined]
        return check_optional_ttl(ttl, field="ttl_seconds")

    # -- RPCs ---------------------------------------------------------------------

    @_rpc
    def Get(self, request: pb.GetRequest) -> pb.GetResponse:
        return pb.GetResponse(value=self._adapter.get(self._key(request.key)))

    @_rpc
    def Set(self, request: pb.SetRequest) -> pb.SetResponse:
        self._adapter.set(self._key(request.key), self._value(request.value), ttl=self._ttl(request))
        return pb.SetResponse()

    @_rpc
    def SetIfNotExists(self, request: pb.SetIfNotExistsRequest) -> pb.SetIfNotExistsResponse:
        key, value, ttl = self._key(request.key), self._value(request.value), self._ttl(request)
        request_id = _request_id(request)
        if request.fence:
            fence = self._adapter.set_if_not_exists_fenced(key, value, ttl=ttl, request_id=request_id)
            return pb.SetIfNotExistsResponse(inserted=fence is not None, fencing_token=fence)
        inserted = self._adapter.set_if_not_exists(key, value, ttl=ttl, request_id=request_id)
        return pb.SetIfNotExistsResponse(inserted=inserted)

    @_rpc
    def Delete(self, request: pb.DeleteRequest) -> pb.DeleteResponse:
        self._adapter.delete(self._key(request.key), request_id=_request_id(request))
        return pb.DeleteResponse()

    @_rpc
    def DeleteIfValueMatches(self, request: pb.DeleteIfValueMatchesRequest) -> pb.DeleteIfValueMatchesResponse:
        key, value = self._key(request.key), self._value(request.value)
        deleted = self._adapter.delete_if_value_matches(key, value, request_id=_request_id(request))
        return pb.DeleteIfValueMatchesResponse(deleted=deleted)

    @_rpc
    def Exists(self, request: pb.ExistsRequest) -> pb.ExistsResponse:
        return pb.ExistsResponse(exists=self._adapter.exists(self._key(request.key)))

    @_rpc
    def ListKeys(self, request: pb.ListKeysRequest) -> pb.ListKeysResponse:
        self._check_size(request.prefix, "prefix")
        after = request.after if request.HasField("after") else None
        if after is not None:
            self._check_size(after, "after")
        limit = self._limit(request.limit)
        prefix = current_scope.get().narrow(request.prefix)
        page = self._adapter.list_keys(prefix, limit=limit, after=after)
        return pb.ListKeysResponse(keys=page.keys, next_after=page.next_after)

    @_rpc
    def GetTtl(self, request: pb.GetTtlRequest) -> pb.GetTtlResponse:
        return pb.GetTtlResponse(ttl_seconds=self._adapter.get_ttl(self._key(request.key)))

    @_rpc
    def Expire(self, request: pb.ExpireRequest) -> pb.ExpireResponse:
        if_value = self._value(request.if_value, "if_value") if request.HasField("if_value") else None
        key, ttl = self._key(request.key), self._ttl(request)
        updated = self._adapter.expire(key, ttl, if_value=if_value, request_id=_request_id(request))
        return pb.ExpireResponse(updated=updated)

    @_rpc
    def Batch(self, request: pb.BatchRequest) -> pb.BatchResponse:
        """Each operation runs through its own RPC's code, inside one
        `adapter.batch()` (for SQLite: one transaction, one commit)."""
        if len(request.operations) > MAX_BATCH_OPERATIONS:
            raise KVInvalidArgumentError(
                f"a batch holds at most {MAX_BATCH_OPERATIONS} operations, not {len(request.operations)}",
                reason="BATCH_TOO_LARGE",
                field="operations",
            )
        reply = pb.BatchResponse()
        results = reply.results
        with self._adapter.batch():
            for index, operation in enumerate(request.operations):
                kind = operation.WhichOneof("operation")
                result = results.add()
                try:
                    if kind is None:
                        raise KVInvalidArgumentError(
                            f"operation {index} is empty: set one of its fields", field="operations"
                        )
                    answer = getattr(result, kind)
                    answer.MergeFrom(_BATCH_RUNNERS[kind](self, getattr(operation, kind)))
                    answer.SetInParent()  # an empty response (Set, Delete) must still mark its field
                except Exception as exc:
                    error = status_for(exc)
                    self._failed(f"Batch.{kind}", error, exc)
                    result.error.CopyFrom(_batch_error(error))
        return reply


# Batch operation (oneof field) -> the servicer method that runs it.
_BATCH_METHODS = {
    "get": "Get",
    "set": "Set",
    "set_if_not_exists": "SetIfNotExists",
    "delete": "Delete",
    "delete_if_value_matches": "DeleteIfValueMatches",
    "exists": "Exists",
    "get_ttl": "GetTtl",
    "expire": "Expire",
}
MAX_BATCH_OPERATIONS = 1000


def _request_id(request: Message) -> str | None:
    return request.request_id if request.HasField("request_id") else None  # type: ignore[attr-defined]


def _batch_error(error: RpcError) -> pb.BatchError:
    return pb.BatchError(code=error.code.value[0], message=error.message, reason=error.reason, metadata=error.metadata)


# Batch operation (oneof field) -> the undecorated servicer method that runs it.
_BATCH_RUNNERS = {kind: getattr(KeyValueServicer, method).__wrapped__ for kind, method in _BATCH_METHODS.items()}


def _lenient(message_class: type[_Request]) -> Callable[[bytes], _Request | _MalformedRequest]:
    def deserialize(data: bytes) -> _Request | _MalformedRequest:
        try:
            return message_class.FromString(data)
        except DecodeError as err:
            return _MalformedRequest(message_class.DESCRIPTOR.full_name, str(err))

    return deserialize


def add_to_server(servicer: KeyValueServicer, server: grpc.Server) -> None:
    """Register `servicer` for every method of the KeyValue service.

    Like the generated `add_KeyValueServicer_to_server`, but with request
    parsing that lets a malformed request reach the servicer as such.
    """
    handlers = {}
    for method in SERVICE_DESCRIPTOR.methods:
        request_class = getattr(pb, method.input_type.name)
        response_class = getattr(pb, method.output_type.name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=_lenient(request_class),
            response_serializer=response_class.SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_DESCRIPTOR.full_name, handlers),))
    server.add_registered_method_handlers(SERVICE_DESCRIPTOR.full_name, handlers)
