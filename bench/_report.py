"""kvbench's figures: per-run summaries, the target ratios, the table and the JSON."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from _load import Result

Key = tuple[str, str, str]  # (system, workload, load)
Samples = dict[Key, list[dict[str, Any] | None]]  # one entry per round; None where the run failed

OP_NAMES = {("etcd", "get"): "Range", ("etcd", "set"): "Put", ("redis", "get"): "GET", ("redis", "set"): "SET"}


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * (len(sorted_values) - 1) + 0.5))]


def summarize(result: Result, server_cpu: float | None) -> dict[str, Any]:
    elapsed = max(result.end - result.start, 1e-9)
    lat = sorted(result.latencies)
    ops = result.ops
    return {
        "ops_s": ops / elapsed,
        "p50_ms": pct(lat, 0.50) * 1e3,
        "p99_ms": pct(lat, 0.99) * 1e3,
        "mean_ms": (sum(lat) / len(lat) * 1e3) if lat else float("nan"),
        "ops": ops,
        "calls": result.calls,
        "hits": result.hits,
        "errors": result.errors,
        "first_error": result.first_error,
        "seconds": elapsed,
        "srv_cpu_us_op": None if server_cpu is None or not ops else server_cpu / ops * 1e6,
        "cli_cpu_us_op": result.cpu / ops * 1e6 if ops else None,
    }


def median(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def med(samples: list[dict[str, Any] | None], name: str) -> float:
    return median([s[name] for s in samples if s is not None and s.get(name) is not None])


def median_columns(samples: list[dict[str, Any]]) -> str:
    """The middle columns of bench/stores.py's and bench/server_model.py's tables:
    ops/s (median, min-max over rounds), p50 and p99 ms, server CPU us/op (medians)."""
    ops = [s["ops_s"] for s in samples]
    cpu = med(samples, "srv_cpu_us_op")
    return (
        f"{median(ops):9.0f} {min(ops):9.0f}-{max(ops):<9.0f} {med(samples, 'p50_ms'):7.3f}"
        f" {med(samples, 'p99_ms'):7.3f} {'n/a' if math.isnan(cpu) else format(cpu, '.0f'):>8}"
    )


# -- target ratios ------------------------------------------------------------------------


@dataclass
class Ratio:
    id: str
    name: str
    target: str  # e.g. ">= 1.0"
    per_round: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def value(self) -> float:
        return median(self.per_round)

    @property
    def met(self) -> bool | None:
        value = self.value
        if not self.target or math.isnan(value):
            return None
        op, bound = self.target.split()
        return {">=": value >= float(bound), "<=": value <= float(bound), "<": value < float(bound)}[op]

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "value": None if math.isnan(self.value) else round(self.value, 4),
            "per_round": [None if math.isnan(v) else round(v, 4) for v in self.per_round],
            "target": self.target,
            "met": self.met,
            "note": self.note,
        }


def paired(samples: Samples, rounds: int, a: Key, b: Key, field_name: str) -> list[float]:
    """Per round: a[field] / b[field], from runs made side by side in that round."""
    out = []
    for r in range(rounds):
        sa = samples.get(a, [None] * rounds)[r]
        sb = samples.get(b, [None] * rounds)[r]
        if sa is None or sb is None or not sb.get(field_name) or sa.get(field_name) is None:
            out.append(float("nan"))
        else:
            out.append(sa[field_name] / sb[field_name])
    return out


def target_ratios(samples: Samples, rounds: int, stores: list[str], loads: list[str]) -> list[Ratio]:
    ratios: list[Ratio] = []

    def add(rid: str, name: str, target: str, a: Key, b: Key, field_name: str, note: str = "") -> None:
        if a in samples and b in samples:
            ratios.append(Ratio(rid, name, target, paired(samples, rounds, a, b, field_name), note))

    for store in stores:
        if store == "redis":
            continue
        for load in loads:
            for w, op in (("get", "Range"), ("set", "Put")):
                add(
                    "a",
                    f"kvgrpc/{store} {w} vs etcd {op}, {load}: ops/s ratio",
                    ">= 1.0",
                    (f"kvgrpc/{store}", w, load),
                    ("etcd", w, load),
                    "ops_s",
                )
    for w in ("get", "set"):
        add(
            "b",
            f"kvgrpc/memory {w} vs floor, 1 thread: p50 latency ratio (ours/floor)",
            "<= 1.10",
            ("kvgrpc/memory", w, "1 thread"),
            ("floor", w, "1 thread"),
            "p50_ms",
        )
        add(
            "b",
            f"kvgrpc/memory {w} vs floor, 8 procs: cost per op (floor ops/s / ours)",
            "<= 1.10",
            ("floor", w, "8 procs"),
            ("kvgrpc/memory", w, "8 procs"),
            "ops_s",
        )
    for w in ("pipeline_set", "pipeline_get"):
        for store in ("memory", "sqlite"):
            add(
                "c",
                f"kvgrpc/{store} pipeline() of 100 vs redis-py pipeline of 100 ({w.split('_')[1]}): ops/s ratio",
                ">= 1.0",
                (f"kvgrpc/{store}", w, "1 thread"),
                ("redis", w, "1 thread"),
                "ops_s",
                note="target assumed: parity with Redis",
            )
    for w in ("get", "set"):
        add(
            "d",
            f"kvgrpc/memory {w}: 8 threads sharing one KeyValueClient vs 1 thread: ops/s ratio",
            ">= 2.0",
            ("kvgrpc/memory", w, "8 threads"),
            ("kvgrpc/memory", w, "1 thread"),
            "ops_s",
        )
    for w in ("set", "set_if_not_exists", "delete_if_value_matches"):
        add(
            "e",
            f"kvgrpc sqlite vs memory store, {w}, 8 writer procs: ops/s ratio",
            ">= 0.9",
            ("kvgrpc/sqlite", w, "8 procs"),
            ("kvgrpc/memory", w, "8 procs"),
            "ops_s",
        )
    return ratios


def memory_ratios(memory: list[dict[str, Any]]) -> list[Ratio]:
    out = []
    for figures in memory:
        value = figures["peak_over_raw"]
        target = "< 3.0" if figures["store"] == "memory" else ""
        note = "" if figures["store"] == "memory" else "no target for SQLite (rows live on disk); for reference"
        out.append(
            Ratio(
                "f",
                f"kvgrpc serve {figures['store']} store, {figures['keys_loaded']:,} keys of "
                f"{figures['value_bytes']} B: peak RSS / raw data size",
                target,
                [value],
                note,
            )
        )
    return out


# -- printing -----------------------------------------------------------------------------


def fmt(value: float | None, spec: str, width: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{'-':>{width}}"
    return f"{value:{width}{spec}}"


def table(samples: Samples, order: list[Key], emit: Callable[[str], None]) -> None:
    header = (
        f"{'workload':<24} {'load':<9} {'system':<16} {'ops/s':>9} {'min-max (rounds)':>17} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'srv us/op':>9} {'cli us/op':>9} {'err':>4}"
    )
    emit(header)
    emit("-" * len(header))
    last = None
    for key in order:
        system, workload, load = key
        rows = samples[key]
        done = [s for s in rows if s is not None]
        if (workload, load) != last and last is not None:
            emit("")
        last = (workload, load)
        label = workload + (f" ({OP_NAMES[(system, workload)]})" if (system, workload) in OP_NAMES else "")
        if not done:
            emit(f"{label:<24} {load:<9} {system:<16} {'failed':>9}")
            continue
        ops = [s["ops_s"] for s in done]
        spread = f"{min(ops):.0f}-{max(ops):.0f}"
        emit(
            f"{label:<24} {load:<9} {system:<16} {fmt(median(ops), '.0f', 9)} {spread:>17} "
            f"{fmt(med(rows, 'p50_ms'), '.3f', 7)} {fmt(med(rows, 'p99_ms'), '.3f', 7)} "
            f"{fmt(med(rows, 'srv_cpu_us_op'), '.0f', 9)} {fmt(med(rows, 'cli_cpu_us_op'), '.0f', 9)} "
            f"{sum(s['errors'] for s in done):4d}"
        )


def ratio_table(ratios: list[Ratio], emit: Callable[[str], None]) -> None:
    for ratio in ratios:
        met = {True: "met", False: "NOT MET", None: "n/a"}[ratio.met] if ratio.target else "info"
        target = f"target {ratio.target}" if ratio.target else "no target"
        rounds = " ".join("-" if math.isnan(v) else f"{v:.2f}" for v in ratio.per_round)
        value = "-" if math.isnan(ratio.value) else f"{ratio.value:.2f}"
        note = f"  ({ratio.note})" if ratio.note else ""
        emit(f"({ratio.id}) {ratio.name}: {value} [{rounds}] {target}: {met}{note}")


def write_json(path: str, document: dict[str, Any]) -> None:
    def clean(value: Any) -> Any:
        if isinstance(value, float):
            return None if math.isnan(value) or math.isinf(value) else round(value, 6)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    with open(path, "w") as f:
        json.dump(clean(document), f, indent=1)
        f.write("\n")
