"""`make bench` must never rot: its quick mode runs once in the suite.

No figure is asserted (speed targets live in the benchmark, and this
machine is shared); the run must finish, compare what it can, and write its
JSON report.
"""

from __future__ import annotations

import json
import subprocess
import sys

from components import ROOT, require


def test_quick_benchmark_runs(tmp_path):
    for tool, package in (("etcd", "etcd-server"), ("redis-server", "redis-server")):
        require(tool, tool, f"apt-get install {package}; .ci/run installs it")
    report = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "kvbench.py"), "--quick", "--json", str(report)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "MISSING" not in result.stdout, result.stdout
    data = json.loads(report.read_text())
    assert data["failures"] == {} and data["meta"]["missing"] == {}
    assert data["results"] and data["targets"]  # figures and ratios were computed
