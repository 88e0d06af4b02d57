"""buf lint and buf breaking over proto/, with the buf pinned in tools/buf/.

Lint: STANDARD and COMMENTS (proto/buf.yaml). Breaking: FILE, against the
released v1 contract, the commit named in proto/BREAKING_BASELINE, read from
this clone's own git history (no tag, network or Buf Schema Registry needed).
The negative tests break a copy of proto/ on purpose and show that each check
fails with the rule it is meant to enforce.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from components import require

ROOT = Path(__file__).resolve().parents[1]
PROTO = ROOT / "proto"
BUF = ROOT / "tools" / "buf" / "node_modules" / ".bin" / "buf"
PROTO_FILE = Path("kvgrpc", "v1", "keyvalue.proto")
RELEASE_TAG = "v1.0.0"


def baseline_commit() -> str:
    """The full SHA in proto/BREAKING_BASELINE, the one place it is recorded."""
    lines = [line.strip() for line in (PROTO / "BREAKING_BASELINE").read_text().splitlines()]
    shas = [line for line in lines if line and not line.startswith("#")]
    assert len(shas) == 1 and re.fullmatch(r"[0-9a-f]{40}", shas[0]), f"want one full commit SHA, got {shas}"
    return shas[0]


# buf's git input, resolved by cloning this repository's own .git (buf is run
# from the repository root): the released proto/ tree, whatever HEAD is.
AGAINST = f".git#ref={baseline_commit()},subdir=proto"


@pytest.fixture(scope="module")
def buf(tmp_path_factory: pytest.TempPathFactory):
    binary = require(BUF, "buf", "run `npm ci --prefix tools/buf`; `make test` does it when npm is installed")
    env = {
        **os.environ,
        "BUF_CACHE_DIR": str(tmp_path_factory.mktemp("buf-cache")),
        # Offline: any attempt to reach the network (the Buf Schema Registry)
        # goes to a closed local port and fails the test instead.
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "https_proxy", "BUF_TOKEN"):
        env.pop(name, None)

    def run(*args: str) -> tuple[int, list[dict], str]:
        """Run buf from the repository root; return its exit code, its
        findings (--error-format=json) and stderr."""
        result = subprocess.run(
            [binary, *args, "--error-format=json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        findings = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        return result.returncode, findings, result.stderr

    return run


def proto_copy(tmp_path: Path) -> Path:
    """A copy of proto/, buf.yaml included."""
    copy = tmp_path / "proto"
    shutil.copytree(PROTO, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of proto/ with `old` replaced, once, by `new` in the .proto."""
    copy = proto_copy(tmp_path)
    source = (copy / PROTO_FILE).read_text()
    assert source.count(old) == 1, f"{old!r} must occur exactly once in the .proto"
    (copy / PROTO_FILE).write_text(source.replace(old, new))
    return copy


def rules(findings: list[dict]) -> set[str]:
    return {finding["type"] for finding in findings}


def test_baseline_is_the_v1_release():
    sha = baseline_commit()
    present = subprocess.run(["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=ROOT, capture_output=True)
    assert present.returncode == 0, f"baseline commit {sha} is not in this clone (a shallow clone? fetch its history)"
    tag = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"refs/tags/{RELEASE_TAG}^{{commit}}"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if tag.returncode == 0:  # a fresh clone of main may lack the tag; where present, it must agree
        assert tag.stdout.strip() == sha, f"proto/BREAKING_BASELINE is not the commit of tag {RELEASE_TAG}"
    released = subprocess.run(["git", "cat-file", "-e", f"{sha}:proto/{PROTO_FILE.as_posix()}"], cwd=ROOT)
    assert released.returncode == 0, f"the baseline commit has no proto/{PROTO_FILE.as_posix()}"


def test_lint_passes(buf):
    code, findings, stderr = buf("lint", "proto")
    assert (code, findings) == (0, []), f"buf lint failed ({stderr.strip()}): {findings}"


def test_no_breaking_change_since_the_release(buf):
    code, findings, stderr = buf("breaking", "proto", "--against", AGAINST)
    assert (code, findings) == (0, []), f"breaking changes against {RELEASE_TAG} ({stderr.strip()}): {findings}"


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ("  bytes value = 1;\n}", "  string value = 1;\n}", "FIELD_SAME_TYPE"),  # GetResponse.value
        ("  int32 limit = 2;\n", "  int32 limit = 4;\n", "FIELD_NO_DELETE"),  # renumbered
        ("  bool exists = 1;\n", "  bool present = 1;\n", "FIELD_SAME_NAME"),  # wire-compatible, source-breaking
        ("gen/go/kvgrpc/v1;kvgrpcv1", "gen/go/kvgrpc/v1;kv", "FILE_SAME_GO_PACKAGE"),  # only FILE checks this
        ("  rpc Exists(ExistsRequest) returns (ExistsResponse);\n", "", "RPC_NO_DELETE"),
    ],
    ids=["field-type", "field-number", "field-name", "go-package", "rpc-deleted"],
)
def test_breaking_change_is_caught(buf, tmp_path, old, new, rule):
    copy = broken_copy(tmp_path, old, new)
    code, findings, stderr = buf("breaking", str(copy), "--against", AGAINST)
    assert code != 0, f"buf breaking passed a breaking change ({old.strip()!r} -> {new.strip()!r})"
    assert rule in rules(findings), f"expected {rule}, got {findings} {stderr}"


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        (
            "  string key = 1;\n}\n\n// GetResponse",
            "  string someKey = 1;\n}\n\n// GetResponse",
            "FIELD_LOWER_SNAKE_CASE",
        ),
        ("  // exists is true if the key is present and not expired.\n", "", "COMMENT_FIELD"),
    ],
    ids=["camel-case-field", "uncommented-field"],
)
def test_lint_violation_is_caught(buf, tmp_path, old, new, rule):
    copy = broken_copy(tmp_path, old, new)
    code, findings, stderr = buf("lint", str(copy))
    assert code != 0, f"buf lint passed {new.strip()!r}"
    assert rules(findings) == {rule}, f"expected only {rule}, got {findings} {stderr}"


def test_service_suffix_exception_covers_only_the_released_file(buf, tmp_path):
    copy = proto_copy(tmp_path)
    (copy / "kvgrpc" / "v1" / "admin.proto").write_text(
        'syntax = "proto3";\n\npackage kvgrpc.v1;\n\n'
        'option csharp_namespace = "Kvgrpc.V1";\n'
        'option go_package = "github.com/kvgrpc/kvgrpc/gen/go/kvgrpc/v1;kvgrpcv1";\n'
        "option java_multiple_files = true;\n"
        'option java_package = "com.github.kvgrpc.v1";\n\n'
        "// Admin is a service in another file, so it gets no exception.\n"
        "service Admin {}\n"
    )
    code, findings, stderr = buf("lint", str(copy))
    assert code != 0
    assert [(f["type"], Path(f["path"]).name) for f in findings] == [("SERVICE_SUFFIX", "admin.proto")], stderr
