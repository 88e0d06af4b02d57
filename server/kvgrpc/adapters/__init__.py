"""Storage adapters implementing `kvgrpc.ports.IKeyValueAdapter`."""

from kvgrpc.adapters.python import PythonAdapter
from kvgrpc.adapters.redis import RedisAdapter

__all__ = ["PythonAdapter", "RedisAdapter"]
