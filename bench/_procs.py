"""Child processes for kvbench: kvgrpc serve, the grpcio floor, etcd, redis-server.

Every child binds 127.0.0.1 on a free port, runs in its own session (a Ctrl-C
in the terminal reaches only the bench, whose `finally` stops the children in
order), gets SIGTERM if the bench process dies (PR_SET_PDEATHSIG), and is
stopped with `stop()`: SIGTERM, then SIGKILL if it lingers.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ETCD_PROTO_DIR = BENCH_DIR / "etcd"
ETCD_BINARY = os.environ.get("KVBENCH_ETCD", "/usr/bin/etcd")  # etcd 3.4 (Debian etcd-server)
_KVGRPC_READY = re.compile(r"kvgrpc serving on (\S+):(\d+)")
_FLOOR_READY = re.compile(r"floor serving on (\S+):(\d+)")


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the bench process dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int | None) -> float | None:
    """User+system CPU time of process `pid` (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def stop_process(proc: Any) -> None:
    """A multiprocessing child that was asked to exit: join, then SIGTERM, then SIGKILL."""
    proc.join(5)
    if proc.is_alive():
        proc.terminate()
        proc.join(3)
    if proc.is_alive():
        proc.kill()
        proc.join(3)


class Child:
    """A child process whose output (stdout and stderr) is collected in the background."""

    def __init__(self, name: str, command: list[str], cwd: str, ready: re.Pattern[str] | None = None) -> None:
        self.name = name
        self.output: list[str] = []
        self.port = 0
        self._ready_pattern = ready
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            command,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        threading.Thread(target=self._read, name=f"read-{name}", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if len(self.output) < 5000:
                self.output.append(line)
            if self._ready_pattern is not None and not self._ready.is_set():
                match = self._ready_pattern.search(line)
                if match:
                    self.port = int(match.group(2))
                    self._ready.set()
        self._ready.set()  # EOF: the child is gone; wait_ready() sees port 0

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2) and time.monotonic() < deadline:
            pass  # short waits: a signal reaches the main thread at once
        if not self._ready.is_set() or not self.port:
            self.stop()
            raise RuntimeError(f"{self.name} did not start:\n{self.tail()}")

    def tail(self, chars: int = 2000) -> str:
        return "".join(self.output)[-chars:]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float | None:
        """User+system CPU time of the child (Linux /proc), or None."""
        return cpu_seconds(self.proc.pid)

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) of the child in bytes (Linux /proc)."""
        found: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    found[name] = int(rest.split()[0]) * 1024
        return found

    def terminate(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.terminate()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, wait, then SIGKILL; safe to call at any time, repeatedly."""
        self.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)


def stop_all(children: list[Child]) -> None:
    """Signal every child at once (their drains overlap), then reap each."""
    for child in children:
        child.terminate()
    for child in reversed(children):
        child.stop()


def _wait_until(check: Callable[[], bool], child: Child, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:
            pass
        if time.monotonic() > deadline or child.proc.poll() is not None:
            child.stop()
            raise RuntimeError(f"{what} did not answer within {timeout:g}s:\n{child.tail()}")
        time.sleep(0.05)


# -- what is installed ----------------------------------------------------------------


def missing_components() -> dict[str, str]:
    """Component -> what is missing and how to install it."""
    missing: dict[str, str] = {}
    if not os.access(ETCD_BINARY, os.X_OK):
        missing["etcd"] = f"{ETCD_BINARY} not found: install it with `apt-get install -y etcd-server` (etcd 3.4)"
    if importlib.util.find_spec("grpc_tools") is None:
        missing["etcd-proto"] = (
            "grpc_tools (grpcio-tools) is not importable, so bench/etcd/rpc.proto cannot be compiled: "
            f"`{sys.executable} -m pip install grpcio-tools`"
        )
    if shutil.which("redis-server") is None:
        missing["redis-server"] = "redis-server not on PATH: install it with `apt-get install -y redis-server`"
    if importlib.util.find_spec("redis") is None:
        missing["redis-py"] = f"redis-py is not importable: `{sys.executable} -m pip install redis`"
    return missing


def kvgrpc_command() -> list[str]:
    script = Path(sys.executable).with_name("kvgrpc")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from kvgrpc.cli import main; sys.exit(main())"]


# -- starting each child --------------------------------------------------------------


def start_kvgrpc(name: str, store_url: str, workdir: str) -> Child:
    """`kvgrpc serve` on 127.0.0.1:0; wait_ready() parses the port from its log line."""
    command = [*kvgrpc_command(), "serve", "--listen", "127.0.0.1:0", "--store", store_url, "--log-level", "INFO"]
    return Child(name, command, workdir, ready=_KVGRPC_READY)


def start_floor(workdir: str) -> Child:
    """The minimal grpcio server (`_floor.py`) on 127.0.0.1:0."""
    command = [sys.executable, str(BENCH_DIR / "_floor.py")]
    return Child("floor", command, workdir, ready=_FLOOR_READY)


def start_redis(workdir: str) -> Child:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir]
    command += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"]
    child = Child("redis-server", command, workdir)
    child.port = port
    return child


def wait_redis(child: Child, timeout: float = 15.0) -> None:
    import redis

    with contextlib.closing(redis.Redis(port=child.port, socket_connect_timeout=0.5, socket_timeout=0.5)) as probe:
        _wait_until(lambda: bool(probe.ping()), child, timeout, "redis-server")


def start_etcd(workdir: str) -> Child:
    """A one-member etcd on loopback with its own data dir under `workdir`."""
    client_port, peer_port = free_port(), free_port()
    while peer_port == client_port:
        peer_port = free_port()
    data_dir = os.path.join(workdir, "etcd-data")
    client_url, peer_url = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    command = [
        ETCD_BINARY,
        "--name",
        "kvbench",
        "--data-dir",
        data_dir,
        "--listen-client-urls",
        client_url,
        "--advertise-client-urls",
        client_url,
        "--listen-peer-urls",
        peer_url,
        "--initial-advertise-peer-urls",
        peer_url,
        "--initial-cluster",
        f"kvbench={peer_url}",
        "--initial-cluster-state",
        "new",
        "--log-level",
        "warn",
    ]
    child = Child("etcd", command, workdir)
    child.port = client_port
    return child


def wait_etcd(child: Child, gen_dir: str, timeout: float = 30.0) -> None:
    import grpc

    pb, stub_module = load_etcd_stubs(gen_dir)
    with grpc.insecure_channel(child.target) as channel:
        stub = stub_module.KVStub(channel)

        def ready() -> bool:
            stub.Put(pb.PutRequest(key=b"kvbench/ready", value=b"1"), timeout=1.0)
            return True

        _wait_until(ready, child, timeout, "etcd")


def compile_etcd_proto(out_dir: str) -> str:
    """Compile bench/etcd/rpc.proto with grpc_tools.protoc into `out_dir`; return it."""
    from grpc_tools import protoc

    include = str(Path(protoc.__file__).resolve().parent / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{ETCD_PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(ETCD_PROTO_DIR / "rpc.proto"),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"grpc_tools.protoc failed on {ETCD_PROTO_DIR / 'rpc.proto'}")
    return out_dir


def load_etcd_stubs(gen_dir: str) -> tuple[object, object]:
    """The compiled etcd modules (rpc_pb2, rpc_pb2_grpc) from `gen_dir`."""
    if gen_dir not in sys.path:
        sys.path.insert(0, gen_dir)
    return importlib.import_module("rpc_pb2"), importlib.import_module("rpc_pb2_grpc")
