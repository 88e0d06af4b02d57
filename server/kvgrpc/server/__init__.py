"""The kvgrpc server: `create_server()` builds one, `serve()` runs one until signalled."""

from kvgrpc.server.app import RunningServer, ServerConfig, create_server, serve

__all__ = ["RunningServer", "ServerConfig", "create_server", "serve"]
