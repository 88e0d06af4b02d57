"""The committed stubs are exactly what the pinned generator makes from the
.proto, and the .proto keeps the promises the style guide asks of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

from kvgrpc.v1 import keyvalue_pb2

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "client" / "kvgrpc" / "v1"


def test_committed_stubs_match_the_proto(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "proto" / "generate.py"), str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    generated = sorted(p.relative_to(tmp_path / "kvgrpc" / "v1") for p in (tmp_path / "kvgrpc" / "v1").glob("*_pb2*"))
    assert [str(p) for p in generated] == [
        "keyvalue_pb2.py",
        "keyvalue_pb2.pyi",
        "keyvalue_pb2_grpc.py",
        "keyvalue_pb2_grpc.pyi",
    ]
    stale = [str(p) for p in generated if (tmp_path / "kvgrpc" / "v1" / p).read_text() != (COMMITTED / p).read_text()]
    assert not stale, f"stubs differ from the .proto: run `make proto` and commit ({stale})"


def test_every_rpc_has_its_own_request_and_response():
    service = keyvalue_pb2.DESCRIPTOR.services_by_name["KeyValue"]
    assert [m.name for m in service.methods] == [
        "Get", "Set", "SetIfNotExists", "Delete", "DeleteIfValueMatches", "Exists", "ListKeys", "GetTtl", "Expire",
        "Batch",
    ]  # fmt: skip
    for method in service.methods:
        assert method.input_type.name == f"{method.name}Request"
        assert method.output_type.name == f"{method.name}Response"


def test_every_element_is_commented(tmp_path):
    """Every message, field, service and RPC has a leading comment that starts
    with its own name (read from protoc's source info, not by grepping)."""
    out = tmp_path / "descriptor.pb"
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={ROOT / 'proto'}", "--include_source_info",
         f"--descriptor_set_out={out}", "kvgrpc/v1/keyvalue.proto"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (file,) = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    comments = {tuple(loc.path): loc.leading_comments.strip() for loc in file.source_code_info.location}
    elements = []  # (path in the descriptor, name)
    for i, message in enumerate(file.message_type):
        elements.append(((4, i), message.name))
        elements += [((4, i, 2, j), field.name) for j, field in enumerate(message.field)]
    for i, service in enumerate(file.service):
        elements.append(((6, i), service.name))
        elements += [((6, i, 2, j), method.name) for j, method in enumerate(service.method)]
    uncommented = [name for path, name in elements if not comments.get(path, "").startswith(name + " ")]
    assert not uncommented, f"no comment starting with the element's name: {uncommented}"
