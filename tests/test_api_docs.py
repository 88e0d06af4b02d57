"""docs/api.md is exactly what proto/gen_api_docs.py makes from the .proto,
and it documents every RPC, message and field of the contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kvgrpc.v1 import keyvalue_pb2

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "api.md"


def generate() -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "proto" / "gen_api_docs.py")], capture_output=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode("utf-8")


def test_committed_api_docs_match_the_proto():
    generated = generate()
    assert generated == generate(), "proto/gen_api_docs.py is not deterministic"
    committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
    assert generated == committed, "docs/api.md differs from the .proto: run `make docs` and commit it"


def test_api_docs_cover_every_rpc_message_and_field():
    docs = COMMITTED.read_text(encoding="utf-8")
    lines = docs.splitlines()
    service = keyvalue_pb2.DESCRIPTOR.services_by_name["KeyValue"]
    assert "## Service KeyValue" in lines
    missing = [m.name for m in service.methods if f"### {m.name}" not in lines]
    assert not missing, f"RPCs without a section in docs/api.md: {missing}"
    for message in keyvalue_pb2.DESCRIPTOR.message_types_by_name.values():
        assert f"### {message.name}" in lines, f"message {message.name} has no section in docs/api.md"
        section = docs.split(f"\n### {message.name}\n", 1)[1].split("\n### ", 1)[0]
        absent = [f.name for f in message.fields if f"| `{f.name}` | {f.number} | " not in section]
        assert not absent, f"{message.name}: fields missing from its table in docs/api.md: {absent}"
        if not message.fields:
            assert "No fields." in section
