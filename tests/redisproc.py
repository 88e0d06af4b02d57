"""Start and stop real `redis-server` processes (and a 3-master cluster) for tests.

Every server binds 127.0.0.1 on a free port, keeps nothing on disk
(`--save "" --appendonly no`, its files in a temporary directory) and is
stopped by whoever started it; `stop()` is safe to call at any time.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.cluster import ClusterNode, RedisCluster

from components import require

HINT = "apt-get install redis-server (redis-server and redis-cli 7+)"


def redis_server_binary() -> str:
    return require("redis-server", "redis-server", HINT)


def redis_cli_binary() -> str:
    return require("redis-cli", "redis-cli", HINT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisProcess:
    """One `redis-server` child process on 127.0.0.1."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.directory = directory
        self.args = args
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return self.url_for(db=0)

    def url_for(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self, **kwargs: object) -> redis.Redis:
        options: dict[str, object] = {"socket_timeout": 5, "socket_connect_timeout": 2, **kwargs}
        return redis.Redis(host="127.0.0.1", port=self.port, **options)  # type: ignore[arg-type]

    def start(self, timeout: float = 10.0) -> RedisProcess:
        """Start on a free port (or on the port it had, after `stop()`); wait for PING."""
        binary = redis_server_binary()
        keep_port = self.port != 0
        for _attempt in range(3):
            if not keep_port:
                self.port = free_port()
            command = [
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--logfile", "redis.log",
                *self.args,
            ]  # fmt: skip
            self.proc = subprocess.Popen(
                command, cwd=self.directory, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
            )
            try:
                answered = self._wait_ping(timeout)
            except BaseException:
                self.stop()
                raise
            if answered:
                return self
            self.stop()
            time.sleep(0.1)
        raise RuntimeError(f"redis-server did not answer PING on port {self.port}:\n{self.log[-3000:]}")

    def _wait_ping(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with contextlib.closing(self.client(socket_timeout=0.5, socket_connect_timeout=0.5)) as probe:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    return False  # e.g. the port was taken meanwhile
                try:
                    if probe.ping():
                        return True
                except redis.RedisError:
                    pass
                time.sleep(0.02)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it lingers. The port is kept for `start()`."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def restart(self) -> RedisProcess:
        self.stop()
        return self.start()

    def __enter__(self) -> RedisProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class RedisClusterProcesses:
    """Three masters, no replicas, slots split by `redis-cli --cluster create`."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.nodes: list[RedisProcess] = []
        for i in range(masters):
            options = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            options += ["--cluster-node-timeout", "2000", "--cluster-port", str(free_port())]
            self.nodes.append(RedisProcess(directory / f"node-{i}", *options))

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(node.address for node in self.nodes)

    def client(self) -> RedisCluster:
        return RedisCluster(
            startup_nodes=[ClusterNode("127.0.0.1", node.port) for node in self.nodes],
            socket_timeout=5,
            socket_connect_timeout=2,
        )

    def start(self, timeout: float = 30.0) -> RedisClusterProcesses:
        cli = redis_cli_binary()
        try:
            for node in self.nodes:
                node.start()
            addresses = [node.address for node in self.nodes]
            created = subprocess.run(
                [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}")
            self._wait_ok(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ok(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            with contextlib.closing(node.client()) as probe:
                while True:
                    info = probe.execute_command("CLUSTER INFO")
                    if isinstance(info, bytes):
                        info = dict(line.split(":", 1) for line in info.decode().split() if ":" in line)
                    text = str(info)
                    if info.get("cluster_state") == "ok" and str(info.get("cluster_known_nodes")) == str(
                        len(self.nodes)
                    ):
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster not ok within {timeout}s on {node.address}:\n{text}")
                    time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> RedisClusterProcesses:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
