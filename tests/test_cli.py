"""The `kvgrpc` console script against a real server: output and exit codes
(0 success, 1 not found / false, 2 usage, 3 other failures)."""

from __future__ import annotations

import uuid

import pytest

from serverproc import run_cli


@pytest.fixture
def cli(memory_server):
    ns = uuid.uuid4().hex[:8] + "/"

    def run(*args: str, stdin: bytes | None = None):
        return run_cli(*[a.replace("NS/", ns) for a in args], target=memory_server.target, stdin=stdin)

    run.ns = ns
    return run


def test_set_get_round_trip(cli):
    assert cli("set", "NS/k", "hello").returncode == 0
    result = cli("get", "NS/k")
    assert (result.returncode, result.stdout, result.stderr) == (0, b"hello", b"")


def test_get_writes_raw_bytes_from_stdin_value(cli):
    value = bytes(range(256))
    assert cli("set", "NS/bin", stdin=value).returncode == 0
    assert cli("get", "NS/bin").stdout == value


def test_get_missing_exits_1_with_one_line(cli):
    result = cli("get", "NS/missing")
    assert result.returncode == 1
    assert result.stdout == b""
    assert result.stderr.decode().count("\n") == 1
    assert "not found" in result.stderr.decode()


def test_set_if_not_exists_exit_codes(cli):
    assert cli("set-if-not-exists", "NS/lock", "a", "--ttl", "30").returncode == 0
    assert cli("set-if-not-exists", "NS/lock", "b").returncode == 1
    assert cli("get", "NS/lock").stdout == b"a"


def test_delete_and_delete_if_value_matches(cli):
    cli("set", "NS/k", "mine")
    assert cli("delete-if-value-matches", "NS/k", "theirs").returncode == 1
    assert cli("delete-if-value-matches", "NS/k", "mine").returncode == 0
    assert cli("delete", "NS/k").returncode == 1
    cli("set", "NS/k", "v")
    assert cli("delete", "NS/k").returncode == 0


def test_exists(cli):
    assert cli("exists", "NS/k").returncode == 1
    cli("set", "NS/k", "v")
    assert cli("exists", "NS/k").returncode == 0


def test_ttl_and_expire(cli):
    cli("set", "NS/k", "v")
    assert cli("ttl", "NS/k").stdout == b"none\n"
    assert cli("expire", "NS/k", "--ttl", "60").returncode == 0
    assert cli("ttl", "NS/k").stdout == b"60\n"
    assert cli("expire", "NS/k", "--ttl", "90", "--if-value", "other").returncode == 1
    assert cli("expire", "NS/k", "--persist", "--if-value", "v").returncode == 0
    assert cli("ttl", "NS/k").stdout == b"none\n"
    assert cli("ttl", "NS/missing").returncode == 1
    assert cli("expire", "NS/missing", "--ttl", "5").returncode == 1


def test_list_pages_through_everything(cli):
    for i in range(12):
        cli("set", f"NS/{i:02d}", "")
    result = cli("list", "NS/")
    assert result.stdout.decode().split() == [f"{cli.ns}{i:02d}" for i in range(12)]
    assert cli("list", "NS/", "--limit", "3").stdout.decode().split() == [f"{cli.ns}{i:02d}" for i in range(3)]
    assert cli("list", "NS/", "--after", "NS/09").stdout.decode().split() == [f"{cli.ns}{i}" for i in (10, 11)]


@pytest.mark.parametrize(
    "args",
    [
        ["get"],
        ["set", "k", "v", "--ttl", "0"],
        ["set", "k", "v", "--ttl", "soon"],
        ["expire", "k"],
        ["expire", "k", "--ttl", "5", "--persist"],
        ["frobnicate"],
        ["get", ""],
        ["list", "--limit", "0"],
    ],
)
def test_usage_errors_exit_2(cli, args):
    result = cli(*args)
    assert result.returncode == 2
    assert result.stderr


def test_server_rejection_is_a_usage_error(cli):
    result = cli("set", "NS/" + "k" * 5000, "v")
    assert result.returncode == 2
    assert "max-key-bytes" in result.stderr.decode()


def test_unreachable_server_exits_3():
    result = run_cli("--timeout", "1", "get", "k", target="127.0.0.1:1")
    assert result.returncode == 3
    assert result.stderr.decode().startswith("kvgrpc: ")


def test_target_from_environment(memory_server):
    run_cli("set", "env-target", "v", target=memory_server.target)
    result = run_cli("get", "env-target", extra_env={"KVGRPC_TARGET": memory_server.target})
    assert (result.returncode, result.stdout) == (0, b"v")


def test_help_lists_every_command():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in [
        "serve",
        "get",
        "set",
        "set-if-not-exists",
        "delete",
        "delete-if-value-matches",
        "exists",
        "list",
        "ttl",
        "expire",
    ]:
        assert command in result.stdout.decode()
