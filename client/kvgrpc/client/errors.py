"""From gRPC status to kvgrpc exception: one table, one wrapper."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from kvgrpc.errors import (
    KVDeadlineExceededError,
    KVError,
    KVInvalidArgumentError,
    KVNotFoundError,
    KVPermissionDeniedError,
    KVUnauthenticatedError,
    KVUnavailableError,
)
from kvgrpc.v1.keyvalue_pb2 import BatchError

ERROR_DOMAIN = "kvgrpc"


def _not_found(details: str, info: error_details_pb2.ErrorInfo) -> KVError:
    return KVNotFoundError(info.metadata.get("key", ""), details)


def _invalid(details: str, info: error_details_pb2.ErrorInfo) -> KVError:
    return KVInvalidArgumentError(details, reason=info.reason or "INVALID_ARGUMENT", field=info.metadata.get("field"))


_BY_CODE = {
    grpc.StatusCode.NOT_FOUND: _not_found,
    grpc.StatusCode.INVALID_ARGUMENT: _invalid,
    grpc.StatusCode.UNAVAILABLE: lambda details, info: KVUnavailableError(details),
    grpc.StatusCode.DEADLINE_EXCEEDED: lambda details, info: KVDeadlineExceededError(details),
    grpc.StatusCode.UNAUTHENTICATED: lambda details, info: KVUnauthenticatedError(details),
    grpc.StatusCode.PERMISSION_DENIED: lambda details, info: KVPermissionDeniedError(details),
}
_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def error_for(code: grpc.StatusCode | int, details: str, info: error_details_pb2.ErrorInfo | None = None) -> KVError:
    """The kvgrpc exception for a status code (or its number), message and ErrorInfo."""
    if isinstance(code, int):
        code = _CODES_BY_NUMBER.get(code, grpc.StatusCode.UNKNOWN)
    info = info if info is not None else error_details_pb2.ErrorInfo()
    make = _BY_CODE.get(code)
    exc = make(details, info) if make else KVError(f"{code.name}: {details}")
    exc.code = code.name
    exc.reason = info.reason or exc.reason
    return exc


def from_batch_error(error: BatchError, key: str) -> KVError:
    """The kvgrpc exception for one failed operation of a Batch call on `key`."""
    exc = error_for(error.code, error.message)
    exc.reason = error.reason or exc.reason
    if isinstance(exc, KVNotFoundError):
        exc.key = key  # the server may leave a long key out of its reply
    return exc


def _error_info(err: grpc.Call) -> error_details_pb2.ErrorInfo | None:
    try:
        status = rpc_status.from_call(err)
    except ValueError:  # malformed status details: fall back to code and message
        return None
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def from_rpc_error(err: grpc.RpcError) -> KVError:
    """Turn a failed call into the kvgrpc exception for its status code."""
    code: grpc.StatusCode = err.code()  # type: ignore[attr-defined]
    return error_for(code, err.details() or code.name, _error_info(err))  # type: ignore[attr-defined,arg-type]
