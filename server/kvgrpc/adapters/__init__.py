"""Storage adapters implementing `kvgrpc.ports.IKeyValueAdapter`."""

from kvgrpc.adapters.python import PythonAdapter

__all__ = ["PythonAdapter"]
