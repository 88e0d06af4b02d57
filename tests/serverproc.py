"""Start and stop real `kvgrpc serve` processes for tests.

Every server binds 127.0.0.1 port 0 and reports the port it got in its start-up
log line; every server a test starts is stopped by the fixture that made it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

KVGRPC = str(Path(sys.executable).with_name("kvgrpc"))
_LISTENING = re.compile(r"kvgrpc serving on (\S+):(\d+) ")


class ServerProcess:
    """One `kvgrpc serve` child process, its output collected in the background."""

    def __init__(
        self,
        store: str | None,
        *args: str,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        tls_root: bytes | None = None,
        tls_client: Any = None,
    ) -> None:
        self.store = store
        self.args = args
        self.env = env
        self.cwd = cwd
        # How the test harness itself reaches a secured server (health checks).
        self.tls_root = tls_root
        self.tls_client = tls_client
        self.output: list[str] = []
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        store = ["--store", self.store] if self.store is not None else []
        command = [KVGRPC, "serve", "--listen", "127.0.0.1:0", *store, *self.args]
        self.output = []
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(self.env or {})},
            cwd=self.cwd,
        )
        bound = threading.Event()
        threading.Thread(target=self._read, args=(self.proc, bound), daemon=True).start()
        if not bound.wait(timeout):
            self.kill()
            raise RuntimeError(f"server did not start within {timeout}s:\n{self.log}")
        self.wait_healthy()
        return self

    def _read(self, proc: subprocess.Popen[str], bound: threading.Event) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.output.append(line)
            match = _LISTENING.search(line)
            if match and not bound.is_set():
                self.port = int(match.group(2))
                bound.set()
        bound.set()  # the process ended; start() reports its output

    @property
    def log(self) -> str:
        return "".join(self.output)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Scrape /metrics (the server must run with --metrics-listen):
        {(sample name, sorted labels): value}."""
        port = re.search(r"metrics=127\.0\.0\.1:(\d+)", self.log).group(1)  # type: ignore[union-attr]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def channel(self) -> grpc.Channel:
        """A channel to this server, with TLS (and a client certificate) if it needs them."""
        if self.tls_root is None:
            return grpc.insecure_channel(self.target)
        client = self.tls_client
        credentials = grpc.ssl_channel_credentials(
            self.tls_root, client.key_pem if client else None, client.cert_pem if client else None
        )
        return grpc.secure_channel(self.target, credentials)

    def health(self, service: str = "", timeout: float = 2.0) -> int:
        with self.channel() as channel:
            request = health_pb2.HealthCheckRequest(service=service)
            return health_pb2_grpc.HealthStub(channel).Check(request, timeout=timeout).status

    def wait_healthy(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"server exited during start-up:\n{self.log}")
            try:
                if self.health() == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not SERVING within {timeout}s:\n{self.log}")
            time.sleep(0.05)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.terminate()
        finally:
            self.kill()


def run_cli(
    *args: str,
    target: str | None = None,
    stdin: bytes | None = None,
    timeout: float = 30.0,
    extra_env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run the real `kvgrpc` console script."""
    command: Sequence[str] = [KVGRPC, *(["--target", target] if target else []), *args]
    return subprocess.run(
        command,
        input=b"" if stdin is None else stdin,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **(extra_env or {})},
        cwd=cwd,
    )
