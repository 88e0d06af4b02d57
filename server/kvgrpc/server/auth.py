"""Bearer tokens, each allowed a key prefix: `--auth-tokens FILE`.

The file has one entry per line, `<token> <key-prefix>` separated by white
space; a token alone may touch every key; blank lines and `#` comments are
ignored. Only SHA-256 digests of tokens are kept in memory, and a presented
token is compared with every digest in constant time.

`AuthInterceptor` authenticates every call except health checks (and, unless
it is protected, reflection) and makes the caller's `KeyScope` available to
the servicer through `current_scope`, which checks each key against it.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from kvgrpc.errors import KVPermissionDeniedError, KVUnauthenticatedError
from kvgrpc.server.errors import abort, status_for

BEARER = "bearer "


class TokenFileError(ValueError):
    """A token file that cannot be used; the message names the line."""


@dataclass(frozen=True)
class KeyScope:
    """The keys a caller may touch: those starting with `prefix`."""

    prefix: str

    def check(self, key: str, field: str = "key") -> None:
        if not key.startswith(self.prefix):
            raise KVPermissionDeniedError(f"{field} is outside the prefix this token may use")

    def narrow(self, prefix: str) -> str:
        """The listing prefix to use for a caller asking for `prefix`: never
        wider than the scope, so a listing never shows a key outside it."""
        if prefix.startswith(self.prefix):
            return prefix
        if self.prefix.startswith(prefix):
            return self.prefix
        raise KVPermissionDeniedError("prefix is outside the prefix this token may use")


EVERY_KEY = KeyScope("")

# The scope of the call being served on this thread; EVERY_KEY without tokens.
current_scope: contextvars.ContextVar[KeyScope] = contextvars.ContextVar("kvgrpc_scope", default=EVERY_KEY)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_token_file(path: str | Path) -> list[tuple[bytes, KeyScope]]:
    """Read a token file into (token digest, scope) entries."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TokenFileError(f"cannot read token file {path}: {err}") from None
    entries: list[tuple[bytes, KeyScope]] = []
    seen: dict[bytes, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        fields = content.split()
        if len(fields) > 2:
            raise TokenFileError(f"{path} line {number}: expected '<token> [<key-prefix>]', found {len(fields)} fields")
        digest = _digest(fields[0])
        if digest in seen:
            raise TokenFileError(f"{path} line {number}: token already given on line {seen[digest]}")
        seen[digest] = number
        entries.append((digest, KeyScope(fields[1] if len(fields) == 2 else "")))
    if not entries:
        raise TokenFileError(f"{path} holds no tokens: every call would be refused")
    return entries


class TokenTable:
    """The tokens in force, reloadable from their file (on SIGHUP)."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._entries = parse_token_file(path)
        self._guard = threading.Lock()

    def reload(self) -> int:
        """Re-read the file; on error keep the tokens in force and raise."""
        entries = parse_token_file(self.path)
        with self._guard:
            self._entries = entries
        return len(entries)

    def scope_for(self, token: str) -> KeyScope | None:
        candidate = _digest(token)
        found = None
        for digest, scope in self._entries:  # no early exit: same work for every token
            if hmac.compare_digest(digest, candidate):
                found = scope
        return found


def _token_from(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    for name, value in metadata or ():
        if name == "authorization" and isinstance(value, str) and value[: len(BEARER)].lower() == BEARER:
            return value[len(BEARER) :].strip()
    return None


class AuthInterceptor(grpc.ServerInterceptor):
    """Refuses calls without a known bearer token; runs the rest in their scope."""

    def __init__(self, tokens: TokenTable, open_services: frozenset[str]) -> None:
        self._tokens = tokens
        self._open_services = open_services

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None], details: Any
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        service = details.method.rsplit("/", 2)[-2] if details.method.count("/") >= 2 else ""
        if handler is None or service in self._open_services:
            return handler
        token = _token_from(details.invocation_metadata)
        scope = self._tokens.scope_for(token) if token else None
        if scope is None:
            reason = "no bearer token" if token is None else "unknown bearer token"
            return _refuse(handler, KVUnauthenticatedError(f"{reason}: send 'authorization: Bearer <token>' metadata"))
        return _in_scope(handler, scope)


def _wrap(handler: grpc.RpcMethodHandler, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Any:
    """The same handler with each of its behaviours wrapped."""
    kinds = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
    return handler._replace(**{kind: wrap(getattr(handler, kind)) for kind in kinds if getattr(handler, kind)})  # type: ignore[attr-defined]


def _in_scope(handler: grpc.RpcMethodHandler, scope: KeyScope) -> Any:
    def wrap(behaviour: Callable[..., Any]) -> Callable[..., Any]:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            token = current_scope.set(scope)
            try:
                return behaviour(request, context)
            finally:
                current_scope.reset(token)

        return run

    return _wrap(handler, wrap)


def _refuse(handler: grpc.RpcMethodHandler, exc: KVUnauthenticatedError) -> Any:
    def wrap(_behaviour: Callable[..., Any]) -> Callable[..., Any]:
        def refuse(_request: Any, context: grpc.ServicerContext) -> Any:
            abort(context, status_for(exc))

        return refuse

    return _wrap(handler, wrap)
