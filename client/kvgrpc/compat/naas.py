"""kvgrpc for naas-abi-core users: `KVGrpcAdapter` is a naas-abi-core
`IKeyValueAdapter` backed by a kvgrpc server, so

    KeyValueService(KVGrpcAdapter("127.0.0.1:50051"))

works unchanged, `lock()` included. It raises naas-abi-core's own
`KVNotFoundError` and returns its own `KVKeyPage`. Requires naas-abi-core
(only its key/value modules are imported).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from naas_abi_core.services.keyvalue import KeyValuePorts as naas

from kvgrpc import errors
from kvgrpc.client import KeyValueClient

__all__ = ["KVGrpcAdapter"]


@contextlib.contextmanager
def _naas_errors() -> Iterator[None]:
    try:
        yield
    except errors.KVNotFoundError as err:
        raise naas.KVNotFoundError(str(err)) from err


class KVGrpcAdapter(naas.IKeyValueAdapter):
    """naas-abi-core's key/value port, served by a remote kvgrpc server.

    Arguments after `target` go to `kvgrpc.client.KeyValueClient` (e.g.
    `timeout`). kvgrpc's other errors (`KVInvalidArgumentError` is a
    `ValueError`, `KVUnavailableError` a `ConnectionError`) pass through.
    """

    def __init__(self, target: str, **client_options: Any) -> None:
        self._client = KeyValueClient(target, **client_options)

    def get(self, key: str) -> bytes:
        with _naas_errors():
            return self._client.get(key)

    def set(self, key: str, value: bytes, ttl: int | None = None) -> None:
        self._client.set(key, value, ttl)

    def set_if_not_exists(self, key: str, value: bytes, ttl: int | None = None) -> bool:
        return self._client.set_if_not_exists(key, value, ttl)

    def delete(self, key: str) -> None:
        with _naas_errors():
            self._client.delete(key)

    def delete_if_value_matches(self, key: str, value: bytes) -> bool:
        return self._client.delete_if_value_matches(key, value)

    def exists(self, key: str) -> bool:
        return self._client.exists(key)

    def list_keys(self, prefix: str = "", *, limit: int = 100, after: str | None = None) -> naas.KVKeyPage:
        page = self._client.list_keys(prefix, limit=limit, after=after)
        return naas.KVKeyPage(page.keys, page.next_after)

    def get_ttl(self, key: str) -> int | None:
        with _naas_errors():
            return self._client.get_ttl(key)

    def expire(self, key: str, ttl: int | None, *, if_value: bytes | None = None) -> bool:
        """kvgrpc's TTL renewal, beyond naas-abi-core's port."""
        return self._client.expire(key, ttl, if_value=if_value)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> KVGrpcAdapter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
