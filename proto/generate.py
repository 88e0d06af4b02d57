"""Generate the Python stubs for the kvgrpc contract.

    python proto/generate.py OUT_DIR

writes kvgrpc/v1/keyvalue_pb2.py, keyvalue_pb2_grpc.py and their .pyi under
OUT_DIR. `make proto` regenerates the committed copies under client/;
tests/test_generated_stubs.py regenerates into a temporary directory and fails
on any difference, so the stubs can never drift from the .proto.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
PROTOS = ["kvgrpc/v1/keyvalue.proto"]
HEADER = "# Generated from proto/{proto} by proto/generate.py (`make proto`). Do not edit.\n"


def _plugin(name: str) -> str:
    """Find a protoc plugin installed beside this Python (mypy-protobuf's)."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: pip install -e '.[dev]' (it comes with mypy-protobuf)")
    return found


def generate(out_dir: Path) -> list[Path]:
    """Run protoc over every proto into `out_dir`; return the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"--proto_path={PROTO_ROOT}",
        f"--proto_path={well_known}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *PROTOS,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed: " + " ".join(args))
    written = []
    for proto in PROTOS:
        stem = out_dir / proto.removesuffix(".proto")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"):
            path = stem.parent / (stem.name + suffix)
            path.write_text(HEADER.format(proto=proto) + path.read_text())
            written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    for path in generate(Path(sys.argv[1])):
        print(path)
