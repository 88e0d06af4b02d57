"""From domain exception to gRPC status: the one table, and the abort helper.

Adapters and validation raise domain exceptions; the servicer never picks a
status code itself. Anything not in the table is a bug or an unexpected
failure: the client gets INTERNAL with a generic message (the servicer logs
the traceback).
"""

from __future__ import annotations

from typing import NamedTuple, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from kvgrpc.client.errors import ERROR_DOMAIN
from kvgrpc.errors import (
    KVError,
    KVInvalidArgumentError,
    KVNotFoundError,
    KVPermissionDeniedError,
    KVUnauthenticatedError,
    KVUnavailableError,
)

# Longer keys are left out of ErrorInfo: trailers past 8 KiB can be refused by
# clients (RESOURCE_EXHAUSTED instead of NOT_FOUND); the caller knows its key.
MAX_KEY_IN_METADATA = 256

# exception class -> (status code, ErrorInfo reason); the first match wins.
STATUS_TABLE: tuple[tuple[type[BaseException], grpc.StatusCode, str], ...] = (
    (KVNotFoundError, grpc.StatusCode.NOT_FOUND, "KEY_NOT_FOUND"),
    (KVInvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    (KVUnavailableError, grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE"),
    (KVUnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
    (KVPermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED, "KEY_OUTSIDE_PREFIX"),
)


class RpcError(NamedTuple):
    """What a failed call tells the client."""

    code: grpc.StatusCode
    reason: str
    message: str
    metadata: dict[str, str]


def status_for(exc: BaseException) -> RpcError:
    """The status, ErrorInfo reason, message and metadata for an exception."""
    for cls, code, reason in STATUS_TABLE:
        if isinstance(exc, cls):
            metadata: dict[str, str] = {}
            if isinstance(exc, KVNotFoundError) and len(exc.key.encode("utf-8")) <= MAX_KEY_IN_METADATA:
                metadata["key"] = exc.key
            if isinstance(exc, KVInvalidArgumentError) and exc.field:
                metadata["field"] = exc.field
            return RpcError(
                code, (exc.reason if isinstance(exc, KVError) and exc.reason else reason), str(exc), metadata
            )
    return RpcError(grpc.StatusCode.INTERNAL, "INTERNAL", "internal error; the server log has the details", {})


def abort(context: grpc.ServicerContext, error: RpcError) -> NoReturn:
    """End the call with `error` and a google.rpc.ErrorInfo detail."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata))
    status = status_pb2.Status(code=getattr(code_pb2, error.code.name), message=error.message, details=[detail])
    context.abort_with_status(rpc_status.to_status(status))
