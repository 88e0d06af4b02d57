"""Transport security, bearer tokens with key prefixes, and safe defaults,
against real server processes with throwaway certificates."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from certs import CA
from contract import wait_until
from kvgrpc.client import KeyValueClient
from kvgrpc.ports import (
    KVInvalidArgumentError,
    KVPermissionDeniedError,
    KVUnauthenticatedError,
    KVUnavailableError,
)
from kvgrpc.server.app import ConfigError, ServerConfig, check_config
from kvgrpc.server.auth import TokenFileError, TokenTable, parse_token_file
from serverproc import ServerProcess, run_cli

TOKENS = """\
# tenants
alpha-token  tenantA/
beta-token   tenantB/

root-token   # may touch every key
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = CA(directory, "ca"), CA(directory, "other-ca")
    return {
        "ca": ca,
        "other": other,
        "server": ca.issue("server", server=True),
        "client": ca.issue("client", server=False),
        "rogue_client": other.issue("rogue", server=False),
        "other_server": other.issue("server2", server=True),
    }


def _fails_to_connect(**client_args) -> None:
    with KeyValueClient(timeout=3, **client_args) as kv, pytest.raises(KVUnavailableError):
        kv.get("k")


# -- TLS and mTLS -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(pki) -> Iterator[ServerProcess]:
    server = pki["server"]
    args = ("--tls-cert", str(server.cert), "--tls-key", str(server.key))
    with ServerProcess("memory://", *args, tls_root=pki["ca"].pem) as process:
        yield process


def test_tls_round_trip(tls_server, pki):
    assert "security=tls" in tls_server.log
    with KeyValueClient(tls_server.target, root_certificates=pki["ca"].pem) as kv:
        kv.set("k", b"over tls")
        assert kv.get("k") == b"over tls"


def test_tls_refuses_plaintext_and_unknown_ca(tls_server, pki):
    _fails_to_connect(target=tls_server.target)
    _fails_to_connect(target=tls_server.target, root_certificates=pki["other"].pem)
    _fails_to_connect(target=tls_server.target, tls=True)  # system roots do not know our CA


@pytest.fixture(scope="module")
def mtls_server(pki) -> Iterator[ServerProcess]:
    server = pki["server"]
    args = ("--tls-cert", str(server.cert), "--tls-key", str(server.key), "--tls-client-ca", str(pki["ca"].files.cert))
    client = pki["client"]
    with ServerProcess("memory://", *args, tls_root=pki["ca"].pem, tls_client=client) as process:
        yield process


def test_mtls_accepts_a_client_certificate_from_its_ca(mtls_server, pki):
    assert "security=mtls" in mtls_server.log
    client = pki["client"]
    with KeyValueClient(
        mtls_server.target, root_certificates=pki["ca"].pem, client_cert=client.cert_pem, client_key=client.key_pem
    ) as kv:
        kv.set("k", b"mutual")
        assert kv.get("k") == b"mutual"


def test_mtls_refuses_clients_without_a_good_certificate(mtls_server, pki):
    _fails_to_connect(target=mtls_server.target, root_certificates=pki["ca"].pem)
    rogue = pki["rogue_client"]
    _fails_to_connect(
        target=mtls_server.target, root_certificates=pki["ca"].pem, client_cert=rogue.cert_pem, client_key=rogue.key_pem
    )
    _fails_to_connect(target=mtls_server.target)


def test_certificates_rotate_on_sighup(pki, tmp_path):
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    shutil.copy(pki["server"].cert, cert)
    shutil.copy(pki["server"].key, key)
    with ServerProcess("memory://", "--tls-cert", str(cert), "--tls-key", str(key), tls_root=pki["ca"].pem) as server:
        pid = server.proc.pid
        shutil.copy(pki["other_server"].cert, cert)  # a certificate from another CA
        shutil.copy(pki["other_server"].key, key)
        server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloaded certificates" in server.log)
        with KeyValueClient(server.target, root_certificates=pki["other"].pem) as kv:
            kv.set("rotated", b"yes")
        _fails_to_connect(target=server.target, root_certificates=pki["ca"].pem)
        assert server.proc.pid == pid and server.proc.poll() is None


def test_bad_certificate_files_stop_startup(pki, tmp_path):
    (tmp_path / "junk.pem").write_text("not a certificate")
    server, other = pki["server"], pki["other_server"]
    for args, message in [
        (["--tls-cert", str(tmp_path / "missing.crt"), "--tls-key", str(server.key)], "cannot read TLS certificate"),
        (["--tls-cert", str(tmp_path / "junk.pem"), "--tls-key", str(server.key)], "is not PEM"),
        (["--tls-cert", str(server.cert), "--tls-key", str(other.key)], "do not fit"),
        (["--tls-client-ca", str(pki["ca"].files.cert)], "--tls-client-ca needs --tls-cert"),
    ]:
        result = run_cli("serve", "--listen", "127.0.0.1:0", "--store", "memory://", *args)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr.decode()


# -- bearer tokens ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "tokens.txt"
    path.write_text(TOKENS)
    return path


@pytest.fixture(scope="module")
def token_server(token_file) -> Iterator[ServerProcess]:
    with ServerProcess("memory://", "--auth-tokens", str(token_file)) as server:
        yield server


def client(server: ServerProcess, token: str | None) -> KeyValueClient:
    return KeyValueClient(server.target, token=token)


def test_missing_or_unknown_token_is_unauthenticated(token_server):
    for token in (None, "wrong-token", "alpha-token-x"):
        with client(token_server, token) as kv, pytest.raises(KVUnauthenticatedError) as info:
            kv.get("tenantA/k")
        assert info.value.code == "UNAUTHENTICATED"
        assert "Bearer" in str(info.value)


def test_token_prefix_confines_keys(token_server):
    with client(token_server, "root-token") as root, client(token_server, "alpha-token") as alpha:
        root.set("tenantB/secret", b"b")
        root.set("other", b"o")
        alpha.set("tenantA/mine", b"a")
        assert alpha.get("tenantA/mine") == b"a"
        for call in (
            lambda: alpha.get("tenantB/secret"),
            lambda: alpha.set("tenantB/secret", b"overwritten"),
            lambda: alpha.delete("other"),
            lambda: alpha.set_if_not_exists("tenantAx", b"a"),
            lambda: alpha.expire("other", 5),
            lambda: alpha.list_keys("tenantB/"),
        ):
            with pytest.raises(KVPermissionDeniedError) as info:
                call()
            assert info.value.code == "PERMISSION_DENIED"
        assert alpha.list_keys("").keys == ("tenantA/mine",)  # a wider listing is narrowed, never leaks
        assert alpha.list_keys("tenant").keys == ("tenantA/mine",)
        assert root.get("tenantB/secret") == b"b"
        assert set(root.list_keys("").keys) >= {"tenantA/mine", "tenantB/secret", "other"}


def test_health_stays_open_and_reflection_needs_a_token(token_server):
    assert token_server.health("kvgrpc.v1.KeyValue") == 1  # SERVING, no token
    request = iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    with grpc.insecure_channel(token_server.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            list(stub.ServerReflectionInfo(request, timeout=5))
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
        request = iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        responses = stub.ServerReflectionInfo(request, timeout=5, metadata=(("authorization", "Bearer beta-token"),))
        assert "kvgrpc.v1.KeyValue" in {s.name for r in responses for s in r.list_services_response.service}


def test_tokens_reload_on_sighup_and_a_bad_file_keeps_them(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text("old-token\n")
    with ServerProcess("memory://", "--auth-tokens", str(path)) as server:
        path.write_text("new-token  fresh/\n")
        server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloaded" in server.log)
        with client(server, "old-token") as old, pytest.raises(KVUnauthenticatedError):
            old.get("fresh/k")
        with client(server, "new-token") as new:
            new.set("fresh/k", b"v")
        path.write_text("new-token fresh/ extra-field\n")
        server.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in server.log)
        assert "line 1" in server.log
        with client(server, "new-token") as new:
            assert new.get("fresh/k") == b"v"
        assert "old-token" not in server.log and "new-token" not in server.log


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("good\nbad token has-three-fields\n", "line 2: expected '<token> [<key-prefix>]', found 3 fields"),
        ("dup a/\n# c\ndup b/\n", "line 3: token already given on line 1"),
        ("# nothing\n\n", "holds no tokens"),
    ],
)
def test_malformed_token_file_names_the_line(tmp_path, text, message):
    path = tmp_path / "tokens.txt"
    path.write_text(text)
    with pytest.raises(TokenFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_token_file(path)
    result = run_cli("serve", "--listen", "127.0.0.1:0", "--store", "memory://", "--auth-tokens", str(path))
    assert result.returncode == 2
    assert message in result.stderr.decode()


def test_only_token_digests_are_kept(token_file):
    table = TokenTable(token_file)
    assert "alpha-token" not in repr(table._entries)
    assert table.scope_for("alpha-token").prefix == "tenantA/"
    assert table.scope_for("root-token").prefix == ""
    assert table.scope_for("alpha") is None


def test_cli_sends_token_and_tls(tmp_path, pki, token_file):
    server_cert = pki["server"]
    args = ("--tls-cert", str(server_cert.cert), "--tls-key", str(server_cert.key), "--auth-tokens", str(token_file))
    with ServerProcess("memory://", *args, tls_root=pki["ca"].pem) as server:
        (tmp_path / "token").write_text("alpha-token\n")
        common = ("--tls-ca", str(pki["ca"].files.cert), "--token-file", str(tmp_path / "token"))
        assert run_cli(*common, "set", "tenantA/cli", "v", target=server.target).returncode == 0
        assert run_cli(*common, "get", "tenantA/cli", target=server.target).stdout == b"v"
        denied = run_cli(*common, "get", "tenantB/x", target=server.target)
        assert denied.returncode == 3 and "outside the prefix" in denied.stderr.decode()
        env = {"KVGRPC_TLS_CA": str(pki["ca"].files.cert), "KVGRPC_TOKEN": "alpha-token"}
        assert run_cli("get", "tenantA/cli", target=server.target, extra_env=env).stdout == b"v"


# -- safe defaults and limits ---------------------------------------------------------------------


def test_network_exposure_needs_tls_tokens_or_insecure():
    with pytest.raises(ConfigError, match="--insecure"):
        check_config(ServerConfig(listen="0.0.0.0:50051"))
    with pytest.raises(ConfigError):
        check_config(ServerConfig(listen="[::]:50051"))
    check_config(ServerConfig(listen="0.0.0.0:50051", insecure=True))
    check_config(ServerConfig(listen="0.0.0.0:50051", auth_tokens="tokens.txt"))
    check_config(ServerConfig(listen="0.0.0.0:50051", tls_cert="c", tls_key="k"))
    for loopback in ("127.0.0.1:1", "[::1]:1", "localhost:1", "127.0.0.2:1"):
        check_config(ServerConfig(listen=loopback))


def test_page_size_limit_names_the_flag():
    with ServerProcess("memory://", "--max-page-size", "10") as server, KeyValueClient(server.target) as kv:
        assert kv.list_keys(limit=10).keys == ()
        with pytest.raises(KVInvalidArgumentError, match="--max-page-size"):
            kv.list_keys(limit=11)
