"""The remote adapter: `KeyValueClient` speaks kvgrpc.v1 to a `kvgrpc serve`."""

from kvgrpc.client.keyvalue import KeyValueClient

__all__ = ["KeyValueClient"]
