"""Load for kvbench: timed call loops, in threads of this process or in loader processes.

A loop runs one workload's call back to back from a common start time until
a deadline (both time.monotonic(), comparable across processes on one host)
and records each call's latency. Loader processes are spawned (never forked:
gRPC state does not survive a fork), build their own drivers from specs, and
exit when the bench closes their pipe, goes away, or after a hard lifetime cap.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from _drivers import Driver, make_driver
from _procs import stop_process

MAX_ERRORS = 50  # a loop gives up after this many failed calls
CTX = mp.get_context("spawn")


@dataclass
class Result:
    ops: int = 0  # operations (a pipeline call counts 100)
    calls: int = 0
    hits: int = 0  # calls whose result was truthy (inserted, deleted, found)
    errors: int = 0
    first_error: str | None = None
    start: float = 0.0
    end: float = 0.0
    cpu: float = 0.0  # CPU seconds of the calling process(es) over the window
    latencies: array = field(default_factory=lambda: array("d"))  # seconds per call


def before_run(driver: Driver, workload: str, tag: str, seq: int) -> None:
    """Untimed set-up of one run: delete_if_value_matches gets twice as many keys
    as set_if_not_exists inserted in its round, so (almost) every call deletes."""
    if workload == "delete_if_value_matches":
        inserted = driver.inserted.get((tag, seq), 0)
        if inserted and hasattr(driver, "top_up"):
            driver.top_up(tag, seq, inserted, inserted)


def run_loop(driver: Driver, workload: str, tag: str, seq: int, start: float, deadline: float) -> Result:
    """Call `workload` back to back from `start` (waits for it) until `deadline`."""
    op, per_call = driver.op(workload, tag, seq)
    out = Result(start=start)
    lat = out.latencies
    record = lat.append
    clock = time.monotonic
    delay = start - clock()
    if delay > 0:
        time.sleep(delay)
    i = hits = errors = 0
    while True:
        t0 = clock()
        if t0 >= deadline:
            break
        try:
            result = op(i)
        except Exception as exc:
            errors += 1
            if out.first_error is None:
                out.first_error = f"{type(exc).__name__}: {exc}"[:300]
            if errors >= MAX_ERRORS:
                break
            i += 1
            continue
        record(clock() - t0)
        if result:
            hits += 1
        i += 1
    out.end = clock()
    out.calls = len(lat)
    out.ops = out.calls * per_call
    out.hits, out.errors = hits, errors
    if workload == "set_if_not_exists":
        driver.inserted[(tag, seq)] = i
    return out


def merge(parts: list[Result], start: float) -> Result:
    total = Result(start=start, end=max(p.end for p in parts))
    for p in parts:
        total.ops += p.ops
        total.calls += p.calls
        total.hits += p.hits
        total.errors += p.errors
        total.cpu += p.cpu
        total.first_error = total.first_error or p.first_error
        total.latencies.extend(p.latencies)
    return total


def run_threads(driver: Driver, workload: str, threads: int, seq: int, duration: float, tag: str) -> Result:
    """`threads` threads of this process share `driver` for `duration` seconds."""
    tags = [tag] if threads == 1 else [f"{tag}{n}" for n in range(threads)]
    for t in tags:
        before_run(driver, workload, t, seq)
    start = time.monotonic() + (0.05 if threads > 1 else 0.0)
    deadline = start + duration
    cpu0 = time.process_time()
    if threads == 1:
        result = run_loop(driver, workload, tag, seq, start, deadline)
    else:
        parts: list[Result | None] = [None] * threads

        def work(n: int) -> None:
            parts[n] = run_loop(driver, workload, f"{tag}{n}", seq, start, deadline)

        workers = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(threads)]
        for w in workers:
            w.start()
        give_up = time.monotonic() + duration + 60  # every remote call has a 5 s deadline
        for w in workers:
            while w.is_alive() and time.monotonic() < give_up:
                w.join(0.2)  # short waits: a signal reaches the main thread at once
        done = [p for p in parts if p is not None]
        if len(done) < threads:
            raise RuntimeError(f"{threads - len(done)} load thread(s) did not finish")
        result = merge(done, start)
    result.cpu = time.process_time() - cpu0
    return result


# -- loader processes -------------------------------------------------------------------


def _loader_main(conn: Connection, index: int, lifetime: float) -> None:
    """One loader: builds drivers on request and runs one loop per "run" message."""
    # Ctrl-C is the bench's to handle: it stops the loaders by closing their pipes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    timer = threading.Timer(lifetime, os._exit, args=(3,))
    timer.daemon = True
    timer.start()
    drivers: dict[tuple[Any, ...], Driver] = {}
    tag = f"p{index}"
    try:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                return
            kind = msg[0]
            try:
                if kind == "prepare":
                    spec = msg[1]
                    if spec not in drivers:
                        drivers[spec] = make_driver(spec)
                    drivers[spec].prepare(tag)
                    conn.send(("ok", None))
                elif kind == "run":
                    _, spec, workload, seq, start, duration = msg
                    before_run(drivers[spec], workload, tag, seq)
                    cpu0 = time.process_time()
                    result = run_loop(drivers[spec], workload, tag, seq, start, start + duration)
                    result.cpu = time.process_time() - cpu0
                    conn.send(("ok", result))
                elif kind == "call":  # run a function of _load's callers, e.g. the memory loader
                    _, module, name, args = msg
                    func = getattr(__import__(module), name)
                    conn.send(("ok", func(*args)))
                else:
                    return
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"[:500]))
    finally:
        for driver in drivers.values():
            with contextlib.suppress(Exception):
                driver.close()


class LoaderPool:
    """`size` loader processes, each with one tag (p0, p1, ...) and its own clients."""

    def __init__(self, size: int, lifetime: float) -> None:
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        self.broken = False
        for n in range(size):
            parent_conn, child_conn = CTX.Pipe()
            proc = CTX.Process(target=_loader_main, args=(child_conn, n, lifetime), name=f"kvbench-loader-{n}")
            proc.daemon = True
            proc.start()
            child_conn.close()
            self.conns.append(parent_conn)
            self.procs.append(proc)

    def _gather(self, conns: list[Connection], timeout: float) -> list[Any]:
        """Every loader's reply (all are read, so the pipes stay in step), or raise."""
        if self.broken:
            raise RuntimeError("the loader pool is out of step after an earlier timeout")
        deadline = time.monotonic() + timeout
        replies, failures = [], []
        for conn in conns:
            # Short polls: a signal (Ctrl-C, SIGTERM) may be delivered to another
            # thread, and the main thread only acts on it once it wakes up.
            while not conn.poll(0.2):
                if time.monotonic() > deadline:
                    self.broken = True
                    raise RuntimeError("a loader process did not answer in time")
            status, value = conn.recv()
            if status == "ok":
                replies.append(value)
            else:
                failures.append(value)
        if failures:
            raise RuntimeError(f"{len(failures)} loader(s) failed: {failures[0]}")
        return replies

    def prepare(self, spec: tuple[Any, ...], timeout: float = 120.0) -> None:
        for conn in self.conns:
            conn.send(("prepare", spec))
        self._gather(self.conns, timeout)

    def run(self, spec: tuple[Any, ...], workload: str, seq: int, duration: float) -> Result:
        start = time.monotonic() + 0.25  # every loader starts at once
        for conn in self.conns:
            conn.send(("run", spec, workload, seq, start, duration))
        return merge(self._gather(self.conns, duration + 90), start)

    def call(self, module: str, name: str, args_per_loader: list[tuple[Any, ...]], timeout: float) -> list[Any]:
        conns = self.conns[: len(args_per_loader)]
        for conn, args in zip(conns, args_per_loader, strict=True):
            conn.send(("call", module, name, args))
        return self._gather(conns, timeout)

    def stop(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("stop",))
            conn.close()
        for proc in self.procs:
            stop_process(proc)
