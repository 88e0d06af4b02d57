"""`KeyValueClient`: `IKeyValueAdapter` over gRPC."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import Any

import grpc

from kvgrpc.client.channel import channel_target, client_options
from kvgrpc.client.coalesce import BATCHABLE, Coalescer
from kvgrpc.client.errors import from_rpc_error
from kvgrpc.client.pipeline import KVPipeline
from kvgrpc.errors import KVDeadlineExceededError, KVNotFoundError
from kvgrpc.ports import IKeyValueAdapter, KVKeyPage, request_id_or_new
from kvgrpc.v1 import keyvalue_pb2 as pb
from kvgrpc.v1.keyvalue_pb2_grpc import KeyValueStub
from kvgrpc.validation import (
    DEFAULT_PAGE_LIMIT,
    ValueLike,
    check_key,
    check_limit,
    check_optional_ttl,
    check_positive_number,
    check_prefix,
    to_bytes,
)

__all__ = ["KeyValueClient"]

DEFAULT_MAX_RECEIVE_BYTES = 64 * 1024 * 1024  # well above the server's default 1 MiB value limit
DEADLINE_ATTEMPTS = 3  # a conditional write is sent at most this often after deadlines


def _check_token(token: object) -> str:
    if not isinstance(token, str) or not token or any(c.isspace() for c in token) or not token.isprintable():
        raise ValueError("token must be a non-empty string without white space")
    return token


class KeyValueClient(IKeyValueAdapter):
    """A thread-safe remote `IKeyValueAdapter` talking to `kvgrpc serve`.

    `target` is a gRPC target such as ``"127.0.0.1:50051"`` or
    ``"dns:///kv.internal:50051"``, or a list of ``"IP:PORT"`` addresses of
    several servers. Calls are balanced round robin over every address; a
    server that goes away is skipped. The channel is opened on first use and
    shared by every thread; `close()` (or leaving a `with` block) releases it.

    TLS: `tls=True` verifies the server against the system's roots, or pass
    `root_certificates` (PEM bytes) for a private CA; `client_cert` and
    `client_key` (PEM bytes) present a client certificate (mTLS). `token`
    is sent as ``authorization: Bearer <token>`` on every call (it works
    without TLS too, for a mesh sidecar that encrypts the hop).

    Calls made by several threads at once are coalesced (`coalesce=True`):
    a call made while another is in flight waits for the next Batch call,
    which carries every call queued meanwhile; a lone call goes out as a
    plain unary RPC.

    Every call has a deadline of `timeout` seconds (None: none). gRPC retries
    calls on UNAVAILABLE (and CANCELLED from a draining server); conditional
    writes carry a request id, so a retry of one that landed gets its first
    outcome, and they are also resent with that id after DEADLINE_EXCEEDED.

    Arguments are checked locally with the same rules as every adapter, so a
    bad one raises before anything is sent. Errors: `KVNotFoundError`,
    `KVInvalidArgumentError` (a `ValueError`), `KVUnavailableError` (a
    `ConnectionError`), `KVDeadlineExceededError` (a `TimeoutError`), and
    `KVError` carrying the status code for anything else.
    """

    def __init__(
        self,
        target: str | Sequence[str],
        *,
        timeout: float | None = 5.0,
        tls: bool = False,
        root_certificates: bytes | None = None,
        client_cert: bytes | None = None,
        client_key: bytes | None = None,
        token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        max_receive_bytes: int = DEFAULT_MAX_RECEIVE_BYTES,
        coalesce: bool = True,
    ) -> None:
        self._target = channel_target(target)
        self._timeout = None if timeout is None else check_positive_number(timeout, field="timeout")
        if (client_cert is None) != (client_key is None):
            raise ValueError("client_cert and client_key go together: give both (mTLS) or neither")
        if credentials is None and (tls or root_certificates or client_cert):
            credentials = grpc.ssl_channel_credentials(root_certificates, client_key, client_cert)
        self._credentials = credentials
        self._metadata = None if token is None else (("authorization", f"Bearer {_check_token(token)}"),)
        self._options = [*client_options(max_receive_bytes=max_receive_bytes), *options]
        self._guard = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._stub: KeyValueStub | None = None
        self._closed = False
        self._coalescer = Coalescer(self._unary, lambda r: self._unary("Batch", r), self._timeout) if coalesce else None

    @property
    def target(self) -> str:
        return self._target

    def _get_stub(self) -> KeyValueStub:
        stub = self._stub
        if stub is not None:
            return stub
        with self._guard:
            if self._closed:
                raise RuntimeError("KeyValueClient is closed")
            if self._stub is None:
                if self._credentials is None:
                    self._channel = grpc.insecure_channel(self._target, options=self._options)
                else:
                    self._channel = grpc.secure_channel(self._target, self._credentials, options=self._options)
                self._stub = KeyValueStub(self._channel)
            return self._stub

    def _call(self, method: str, request: Any) -> Any:
        if self._coalescer is not None and method in BATCHABLE:
            return self._coalescer.call(method, request)
        return self._unary(method, request)

    def _unary(self, method: str, request: Any) -> Any:
        rpc = getattr(self._get_stub(), method)
        try:
            return rpc(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            exc = from_rpc_error(err)
            if isinstance(exc, KVNotFoundError):
                exc.key = request.key  # the server may leave a long key out of its reply
            raise exc from err

    def _call_once(self, method: str, request: Any) -> Any:
        """A conditional write: it carries a request id, so gRPC retries it on
        UNAVAILABLE (service config) and, since the deadline covers all of
        gRPC's attempts, it is sent again with the same id after a
        DEADLINE_EXCEEDED; the server answers a repeat with the first outcome."""
        for _ in range(DEADLINE_ATTEMPTS - 1):
            with contextlib.suppress(KVDeadlineExceededError):
                return self._call(method, request)
        return self._call(method, request)

    def get(self, key: str) -> bytes:
        return self._call("Get", pb.GetRequest(key=check_key(key))).value

    def set(self, key: str, value: ValueLike, ttl: int | None = None) -> None:
        request = pb.SetRequest(key=check_key(key), value=to_bytes(value), ttl_seconds=check_optional_ttl(ttl))
        self._call("Set", request)

    def set_if_not_exists(
        self, key: str, value: ValueLike, ttl: int | None = None, *, request_id: str | None = None
    ) -> bool:
        request = pb.SetIfNotExistsRequest(
            key=check_key(key),
            value=to_bytes(value),
            ttl_seconds=check_optional_ttl(ttl),
            request_id=request_id_or_new(request_id),
        )
        return self._call_once("SetIfNotExists", request).inserted

    def set_if_not_exists_fenced(
        self, key: str, value: ValueLike, ttl: int | None = None, *, request_id: str | None = None
    ) -> int | None:
        request = pb.SetIfNotExistsRequest(
            key=check_key(key),
            value=to_bytes(value),
            ttl_seconds=check_optional_ttl(ttl),
            request_id=request_id_or_new(request_id),
            fence=True,
        )
        response = self._call_once("SetIfNotExists", request)
        return response.fencing_token if response.inserted else None

    def delete(self, key: str, *, request_id: str | None = None) -> None:
        self._call_once("Delete", pb.DeleteRequest(key=check_key(key), request_id=request_id_or_new(request_id)))

    def delete_if_value_matches(self, key: str, value: ValueLike, *, request_id: str | None = None) -> bool:
        request = pb.DeleteIfValueMatchesRequest(
            key=check_key(key), value=to_bytes(value), request_id=request_id_or_new(request_id)
        )
        return self._call_once("DeleteIfValueMatches", request).deleted

    def exists(self, key: str) -> bool:
        return self._call("Exists", pb.ExistsRequest(key=check_key(key))).exists

    def list_keys(self, prefix: str = "", *, limit: int = DEFAULT_PAGE_LIMIT, after: str | None = None) -> KVKeyPage:
        request = pb.ListKeysRequest(
            prefix=check_prefix(prefix, field="prefix"),
            limit=check_limit(limit),
            after=None if after is None else check_prefix(after, field="after"),
        )
        response = self._call("ListKeys", request)
        return KVKeyPage(tuple(response.keys), response.next_after if response.HasField("next_after") else None)

    def get_ttl(self, key: str) -> int | None:
        response = self._call("GetTtl", pb.GetTtlRequest(key=check_key(key)))
        return response.ttl_seconds if response.HasField("ttl_seconds") else None

    def expire(
        self, key: str, ttl: int | None, *, if_value: ValueLike | None = None, request_id: str | None = None
    ) -> bool:
        request = pb.ExpireRequest(
            key=check_key(key),
            ttl_seconds=check_optional_ttl(ttl),
            if_value=None if if_value is None else to_bytes(if_value, field="if_value"),
            request_id=request_id_or_new(request_id),
        )
        return self._call_once("Expire", request).updated

    def pipeline(self) -> KVPipeline:
        """Queue operations and send them in one Batch call (`execute()`)."""
        return KVPipeline(self)

    def close(self) -> None:
        if self._coalescer is not None:
            self._coalescer.close()
        with self._guard:
            self._closed = True
            channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            channel.close()

    def __repr__(self) -> str:
        return f"KeyValueClient({self._target!r})"
