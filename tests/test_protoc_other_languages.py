"""The contract compiles for languages other than Python, offline, and its
per-language file options take effect.

grpcio-tools' `python -m grpc_tools.protoc` cannot show this: it has only the
Python, .pyi and gRPC-Python generators built in, so `--java_out` fails with
"protoc-gen-java: program not found". These tests use a full `protoc`
instead: Debian's protobuf-compiler, which .ci/run installs (or any `protoc`
on PATH, or KVGRPC_PROTOC). Go needs the
separate protoc-gen-go plugin and is not generated; its go_package option is
checked in the descriptor.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components import ROOT, require
from kvgrpc.v1 import keyvalue_pb2

PROTO = "kvgrpc/v1/keyvalue.proto"
MESSAGES = sorted(keyvalue_pb2.DESCRIPTOR.message_types_by_name)
LANGUAGES = ("java", "csharp", "cpp", "ruby", "php")


def find_protoc() -> str:
    candidates = [os.environ.get("KVGRPC_PROTOC"), Path(sys.executable).with_name("protoc"), "protoc"]
    found = next((c for c in candidates if c and (Path(c).is_file() or shutil.which(c))), None)
    return require(found, "a full protoc (with the Java and C# generators)", "apt-get install protobuf-compiler")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run protoc once for every language; return each language's output dir."""
    protoc = find_protoc()
    out = tmp_path_factory.mktemp("protoc-out")
    dirs = {language: out / language for language in LANGUAGES}
    for path in dirs.values():
        path.mkdir()
    result = subprocess.run(
        [protoc, f"--proto_path={ROOT / 'proto'}", *(f"--{lang}_out={path}" for lang, path in dirs.items()), PROTO],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", f"protoc warned:\n{result.stderr}"
    return dirs


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_proto_declares_options_for_other_languages():
    options = keyvalue_pb2.DESCRIPTOR.GetOptions()
    for name in ("go_package", "java_package", "java_multiple_files", "java_outer_classname", "csharp_namespace"):
        assert options.HasField(name), f"keyvalue.proto sets no option {name}"
    assert options.go_package == "github.com/kvgrpc/kvgrpc/gen/go/kvgrpc/v1;kvgrpcv1"
    assert options.java_package == "com.github.kvgrpc.v1"
    assert options.java_multiple_files is True
    assert options.java_outer_classname == "KeyvalueProto"
    assert options.csharp_namespace == "Kvgrpc.V1"


def test_java_one_file_per_message_under_java_package(generated):
    package_dir = "com/github/kvgrpc/v1"
    expected = sorted(
        [f"{package_dir}/KeyvalueProto.java"]
        + [f"{package_dir}/{message}{suffix}.java" for message in MESSAGES for suffix in ("", "OrBuilder")]
    )
    assert files(generated["java"]) == expected
    request = (generated["java"] / package_dir / "GetRequest.java").read_text()
    assert "package com.github.kvgrpc.v1;" in request
    assert "public final class GetRequest extends" in request


def test_csharp_uses_the_csharp_namespace(generated):
    assert files(generated["csharp"]) == ["Keyvalue.cs"]
    code = (generated["csharp"] / "Keyvalue.cs").read_text()
    assert "namespace Kvgrpc.V1 {" in code
    for message in MESSAGES:
        assert f"public sealed partial class {message} : pb::IMessage<{message}>" in code


def test_cpp_ruby_and_php_follow_the_proto_package(generated):
    assert files(generated["cpp"]) == ["kvgrpc/v1/keyvalue.pb.cc", "kvgrpc/v1/keyvalue.pb.h"]
    assert "namespace kvgrpc {\nnamespace v1 {" in (generated["cpp"] / "kvgrpc/v1/keyvalue.pb.h").read_text()
    assert files(generated["ruby"]) == ["kvgrpc/v1/keyvalue_pb.rb"]
    ruby = (generated["ruby"] / "kvgrpc/v1/keyvalue_pb.rb").read_text()
    assert "module Kvgrpc\n  module V1\n" in ruby
    assert files(generated["php"]) == sorted(
        ["GPBMetadata/Kvgrpc/V1/Keyvalue.php"] + [f"Kvgrpc/V1/{message}.php" for message in MESSAGES]
    )
    assert "namespace Kvgrpc\\V1;" in (generated["php"] / "Kvgrpc/V1/GetRequest.php").read_text()
