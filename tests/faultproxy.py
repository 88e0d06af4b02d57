"""A TCP proxy that loses replies on command, for fault-injection tests.

It sits between a gRPC client and server on loopback. Armed with
`drop_next_reply()`, it forwards everything until the server starts a
response (an HTTP/2 HEADERS frame on a stream), then cuts that connection
instead of delivering it: the request was executed, the client never hears
so. That is the case request ids exist for.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

_HEADERS = 0x1


class FaultProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._armed = 0
        self.dropped = 0
        self._guard = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def drop_next_reply(self, count: int = 1) -> None:
        with self._guard:
            self._armed += count

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._guard:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        FaultProxy._cut(source, sink)

    def _replies(self, server: socket.socket, client: socket.socket) -> None:
        """Forward server → client frame by frame, cutting at an armed reply."""
        buffer = b""
        try:
            while data := server.recv(65536):
                buffer += data
                while len(buffer) >= 9:
                    length = int.from_bytes(buffer[:3], "big")
                    if len(buffer) < 9 + length:
                        break
                    kind = buffer[3]
                    stream = struct.unpack(">I", buffer[5:9])[0] & 0x7FFFFFFF
                    if kind == _HEADERS and stream and self._take_arm():
                        self._cut(server, client)
                        return
                    client.sendall(buffer[: 9 + length])
                    buffer = buffer[9 + length :]
        except OSError:
            pass
        self._cut(server, client)

    def _take_arm(self) -> bool:
        with self._guard:
            if not self._armed:
                return False
            self._armed -= 1
            self.dropped += 1
            return True

    @staticmethod
    def _cut(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._guard:
            self._cut(*self._sockets)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
