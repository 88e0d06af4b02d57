"""A plain wheel build carries the stubs and installs nothing outside `kvgrpc`."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contents(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("kvgrpc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"kvgrpc", wheel.name.removesuffix("-py3-none-any.whl") + ".dist-info"}
    for module in [
        "kvgrpc/ports.py",
        "kvgrpc/errors.py",
        "kvgrpc/cli.py",
        "kvgrpc/v1/keyvalue_pb2.py",
        "kvgrpc/v1/keyvalue_pb2.pyi",
        "kvgrpc/v1/keyvalue_pb2_grpc.py",
        "kvgrpc/v1/keyvalue_pb2_grpc.pyi",
        "kvgrpc/client/keyvalue.py",
        "kvgrpc/adapters/python.py",
        "kvgrpc/server/servicer.py",
    ]:
        assert module in names, module
    assert "kvgrpc/__init__.py" not in names  # a PEP 420 namespace package
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "kvgrpc = kvgrpc.cli:main" in entry_points
