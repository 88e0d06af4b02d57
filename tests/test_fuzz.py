"""Hostile input against a real `kvgrpc serve`: raw TCP garbage, broken HTTP/2,
TLS to the plaintext port, malformed protobuf for every RPC, oversized and
unknown calls.

After every case the server must still run, report SERVING, and hold the
canary keys written before the first case, unchanged. What each case got back
is recorded and printed as a table at the end of the module (`pytest -s`).
Frames are built by hand with `struct`; random input comes from fixed seeds.
"""

from __future__ import annotations

import random
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status

from kvgrpc.client import KeyValueClient
from kvgrpc.v1 import keyvalue_pb2 as pb
from serverproc import ServerProcess

SERVICE = pb.DESCRIPTOR.services_by_name["KeyValue"]
METHODS = [method.name for method in SERVICE.methods]
KEYED_METHODS = [m.name for m in SERVICE.methods if "key" in m.input_type.fields_by_name]
Code = grpc.StatusCode

# -- the server, its canaries, the record -----------------------------------------------

CANARY_NS = "fuzz-canary/"
CANARIES: dict[str, tuple[bytes, int | None]] = {
    CANARY_NS + "plain": (b"plain value", None),
    CANARY_NS + "binary": (bytes(range(256)), None),
    CANARY_NS + "empty": (b"", None),
    CANARY_NS + "nul\x00key": (b"\x00\x00", None),
    CANARY_NS + "astral-😀": ("snowman ☃".encode(), None),
    CANARY_NS + "ttl": (b"lease", 100_000),
}


@dataclass
class Outcome:
    group: str
    case: str
    target: str  # the RPC method, or "tcp"/"h2"/"tls"
    result: str


RECORD: list[Outcome] = []


@pytest.fixture(scope="module")
def server(memory_server: ServerProcess) -> Iterator[ServerProcess]:
    with KeyValueClient(memory_server.target, timeout=5) as kv:
        for key, (value, ttl) in CANARIES.items():
            kv.set(key, value, ttl=ttl)
    yield memory_server
    print_table()
    # No case may have reached the servicer's "unexpected error" path.
    assert "failed unexpectedly" not in memory_server.log
    assert "Traceback" not in memory_server.log


@pytest.fixture(scope="module")
def kv(server: ServerProcess) -> Iterator[KeyValueClient]:
    with KeyValueClient(server.target, timeout=5) as client:
        yield client


@pytest.fixture(scope="module")
def channel(server: ServerProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.target) as channel:
        yield channel


def assert_intact(server: ServerProcess, kv: KeyValueClient) -> None:
    assert server.proc is not None and server.proc.poll() is None, f"server died:\n{server.log}"
    assert server.health() == health_pb2.HealthCheckResponse.SERVING
    assert kv.list_keys(CANARY_NS).keys == tuple(sorted(CANARIES))
    for key, (value, ttl) in CANARIES.items():
        assert kv.get(key) == value, key
        remaining = kv.get_ttl(key)
        assert remaining is None if ttl is None else 0 < remaining <= ttl, key


def print_table() -> None:
    """One row per case; cases tried on every RPC method share a row when
    the methods all got the same answer."""
    rows: dict[tuple[str, str], list[Outcome]] = {}
    for outcome in RECORD:
        rows.setdefault((outcome.group, outcome.case), []).append(outcome)
    lines = []
    for (group, case), outcomes in rows.items():
        by_result: dict[str, list[str]] = {}
        for o in outcomes:
            by_result.setdefault(o.result, []).append(o.target)
        for result, targets in by_result.items():
            where = "all methods" if len(outcomes) == len(METHODS) and len(by_result) == 1 else ",".join(targets)
            lines.append((group, case, where, result))
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    print("\n\nHostile inputs and what the server answered (after each: alive, SERVING, canaries intact)")
    for group, case, where, result in lines:
        print(f"{group:<{widths[0]}} | {case:<{widths[1]}} | {where:<{widths[2]}} | {result}")


# -- raw TCP / HTTP/2 -----------------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
FRAME_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS"]
FRAME_NAMES += ["PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"]
H2_ERRORS = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT", "STREAM_CLOSED"]
H2_ERRORS += ["FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM"]
H2_ERRORS += ["INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def frame(kind: int, flags: int = 0, stream: int = 0, payload: bytes = b"", length: int | None = None) -> bytes:
    """An HTTP/2 frame: 24-bit length, type, flags, 31-bit stream id, payload."""
    size = len(payload) if length is None else length
    return struct.pack(">I", size)[1:] + struct.pack(">BBI", kind, flags, stream & 0x7FFFFFFF) + payload


def hpack_literal(name: str, value: str) -> bytes:
    """A header as 'literal without indexing, new name', no Huffman (RFC 7541 6.2.2)."""

    def string(text: str) -> bytes:
        data = text.encode()
        if len(data) < 127:
            return bytes([len(data)]) + data
        rest, out = len(data) - 127, bytearray([127])
        while rest >= 128:
            out.append(rest % 128 + 128)
            rest //= 128
        return bytes([*out, rest]) + data

    return b"\x00" + string(name) + string(value)


def grpc_headers(path: str, content_type: str = "application/grpc") -> bytes:
    fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "127.0.0.1"),
        ("content-type", content_type),
        ("te", "trailers"),
    ]
    return b"".join(hpack_literal(name, value) for name, value in fields)


def grpc_message(body: bytes, *, compressed: bool = False, length: int | None = None) -> bytes:
    """gRPC length-prefixed message: compressed flag, 32-bit length, body."""
    return struct.pack(">BI", int(compressed), len(body) if length is None else length) + body


def describe_frames(data: bytes) -> str:
    """What the server sent, frame by frame (GOAWAY/RST_STREAM with their error)."""
    parts, at = [], 0
    while at + 9 <= len(data):
        size = int.from_bytes(data[at : at + 3], "big")
        kind, flags = data[at + 3], data[at + 4]
        payload = data[at + 9 : at + 9 + size]
        name = FRAME_NAMES[kind] if kind < len(FRAME_NAMES) else f"type{kind}"
        if kind == SETTINGS and flags & ACK:
            name = "SETTINGS-ACK"
        elif kind == PING and flags & ACK:
            name = "PING-ACK"
        elif kind in (GOAWAY, RST_STREAM):
            code_at = 4 if kind == GOAWAY else 0
            code = int.from_bytes(payload[code_at : code_at + 4], "big")
            name += f"({H2_ERRORS[code] if code < len(H2_ERRORS) else code})"
        elif kind == HEADERS:
            # Our SETTINGS-less peer gets literal, non-Huffman trailers: readable as bytes.
            status = re.search(rb"grpc-status[\x01-\x03](\d+)", payload)
            message = re.search(rb"grpc-message([\x01-\x7e])", payload)
            if status:
                name += f"(grpc-status {status_name(int(status.group(1)))}"
                if message:
                    text = payload[message.end() : message.end() + message.group(1)[0]].decode(errors="replace")
                    name += f' "{text[:48]}{"..." if len(text) > 48 else ""}"'
                name += ")"
        if not parts or parts[-1][0] != name:
            parts.append([name, 1])
        else:
            parts[-1][1] += 1
        at += 9 + size
    text = ", ".join(name if n == 1 else f"{name} x{n}" for name, n in parts)
    if at < len(data):
        text += f"{', ' if text else ''}{len(data) - at} stray bytes {data[at : at + 12]!r}"
    return text or "nothing"


def status_name(value: int) -> str:
    return next((c.name for c in Code if c.value[0] == value), str(value))


def _read_until_quiet(sock: socket.socket, quiet: float, limit: float) -> tuple[bytes, str | None]:
    """Read until the server closes, resets, or sends nothing for `quiet` s."""
    data, deadline = bytearray(), time.monotonic() + limit
    sock.settimeout(quiet)
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return bytes(data), None
        except ConnectionResetError:
            return bytes(data), "reset"
        if not chunk:
            return bytes(data), "closed"
        data += chunk
    return bytes(data), None


def raw_exchange(target: tuple[str, int], payload: bytes, *, pause: float = 0.0, abort: bool = False) -> str:
    """Send `payload`, see what the server does; then half-close and see again."""
    with socket.create_connection(target, timeout=5) as sock:
        try:
            if pause:
                time.sleep(pause)
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError) as err:
            return f"server dropped us mid-send ({type(err).__name__})"
        if abort:  # RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return "we reset the connection"
        data, end = _read_until_quiet(sock, quiet=0.3, limit=3)
        if end is not None:
            return f"{describe_frames(data)}; server {end} the connection"
        sock.shutdown(socket.SHUT_WR)
        more, end = _read_until_quiet(sock, quiet=1.0, limit=3)
        how = f"server {end} it after our FIN" if end else "still open 1 s after our FIN"
        return f"{describe_frames(data + more)}; {how}"


def tls_client_hello() -> bytes:
    """The bytes a real TLS client opens with, made by the ssl module in memory."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def _random(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


_SETTINGS = frame(SETTINGS)
_GET_CANARY = pb.GetRequest(key=CANARY_NS + "plain").SerializeToString()
_GET_PATH = "/kvgrpc.v1.KeyValue/Get"

RAW_CASES: list[tuple[str, str, Callable[[], bytes], dict]] = [
    ("tcp", "random bytes, 1 B (seed 1)", lambda: _random(1, 1), {}),
    ("tcp", "random bytes, 23 B (seed 2)", lambda: _random(2, 23), {}),
    ("tcp", "random bytes, 24 B (seed 3)", lambda: _random(3, 24), {}),
    ("tcp", "random bytes, 4 KiB (seed 4)", lambda: _random(4, 4096), {}),
    ("tcp", "random bytes, 1 MiB (seed 5)", lambda: _random(5, 1 << 20), {}),
    ("tcp", "HTTP/1.1 GET", lambda: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", {}),
    ("tcp", "nothing: connect, idle 1 s, close", lambda: b"", {"pause": 1.0}),
    ("tcp", "connect, then RST at once", lambda: b"", {"abort": True}),
    ("tls", "TLS ClientHello to the plaintext port", tls_client_hello, {}),
    ("h2", "preface cut short (first 10 bytes)", lambda: PREFACE[:10], {}),
    ("h2", "preface with a wrong byte", lambda: PREFACE[:-1] + b"X", {}),
    ("h2", "preface + random bytes, 256 B (seed 6)", lambda: PREFACE + _random(6, 256), {}),
    ("h2", "preface + unknown frame type 0xEE", lambda: PREFACE + _SETTINGS + frame(0xEE, 0xFF, 1, b"junk"), {}),
    ("h2", "preface + SETTINGS of length 5", lambda: PREFACE + frame(SETTINGS, payload=b"\x00" * 5), {}),
    (
        "h2",
        "preface + frame length field 0xFFFFFF",
        lambda: PREFACE + _SETTINGS + frame(DATA, 0, 1, b"x", 0xFFFFFF),
        {},
    ),
    (
        "h2",
        "preface + HEADERS with invalid HPACK",
        lambda: PREFACE + _SETTINGS + frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\xff\xff\xff\xff\x7f"),
        {},
    ),
    ("h2", "preface + DATA on stream 0", lambda: PREFACE + _SETTINGS + frame(DATA, 0, 0, b"hello"), {}),
    (
        "h2",
        "preface + RST_STREAM on idle stream 5",
        lambda: PREFACE + _SETTINGS + frame(RST_STREAM, 0, 5, b"\0" * 4),
        {},
    ),
    ("h2", "preface + WINDOW_UPDATE of 0", lambda: PREFACE + _SETTINGS + frame(WINDOW_UPDATE, 0, 0, b"\0" * 4), {}),
    ("h2", "preface + CONTINUATION without HEADERS", lambda: PREFACE + _SETTINGS + frame(CONTINUATION, 4, 1, b""), {}),
    (
        "h2",
        "preface + SETTINGS INITIAL_WINDOW_SIZE 2^31",
        lambda: PREFACE + frame(SETTINGS, payload=struct.pack(">HI", 4, 1 << 31)),
        {},
    ),
    ("h2", "preface + truncated frame (says 100 B, sends 10), close", lambda: PREFACE + frame(PING, length=100), {}),
    (
        "h2",
        "control: a valid Get sent by hand",
        lambda: (
            PREFACE
            + _SETTINGS
            + frame(HEADERS, END_HEADERS, 1, grpc_headers(_GET_PATH))
            + frame(DATA, END_STREAM, 1, grpc_message(_GET_CANARY))
        ),
        {},
    ),
    (
        "h2",
        "gRPC length prefix 100, body 5 bytes, END_STREAM",
        lambda: (
            PREFACE
            + _SETTINGS
            + frame(HEADERS, END_HEADERS, 1, grpc_headers(_GET_PATH))
            + frame(DATA, END_STREAM, 1, grpc_message(b"\x0a\x03abc", length=100))
        ),
        {},
    ),
    (
        "h2",
        "gRPC compressed flag without grpc-encoding",
        lambda: (
            PREFACE
            + _SETTINGS
            + frame(HEADERS, END_HEADERS, 1, grpc_headers(_GET_PATH))
            + frame(DATA, END_STREAM, 1, grpc_message(_GET_CANARY, compressed=True))
        ),
        {},
    ),
    (
        "h2",
        "gRPC call with content-type text/html",
        lambda: (
            PREFACE
            + _SETTINGS
            + frame(HEADERS, END_HEADERS, 1, grpc_headers(_GET_PATH, "text/html"))
            + frame(DATA, END_STREAM, 1, grpc_message(_GET_CANARY))
        ),
        {},
    ),
    (
        "h2",
        "gRPC message length 4 GiB - 1",
        lambda: (
            PREFACE
            + _SETTINGS
            + frame(HEADERS, END_HEADERS, 1, grpc_headers(_GET_PATH))
            + frame(DATA, END_STREAM, 1, grpc_message(b"", length=0xFFFFFFFF))
        ),
        {},
    ),
]


@pytest.mark.parametrize(("group", "case", "payload", "options"), RAW_CASES, ids=[c[1] for c in RAW_CASES])
def test_raw_connection_garbage(server, kv, group, case, payload, options):
    host, port = server.target.rsplit(":", 1)
    result = raw_exchange((host, int(port)), payload(), **options)
    RECORD.append(Outcome(group, case, group, result))
    if case.startswith("control"):
        assert "grpc-status OK" in result, result  # the hand-built stack is right
    assert_intact(server, kv)


def test_many_idle_connections_do_not_block_calls(server, kv):
    host, port = server.target.rsplit(":", 1)
    sockets = [socket.create_connection((host, int(port)), timeout=5) for _ in range(200)]
    try:
        for i, sock in enumerate(sockets):
            sock.sendall(PREFACE[: i % len(PREFACE)])  # every stage of a half-sent preface
        started = time.monotonic()
        assert_intact(server, kv)
        elapsed = time.monotonic() - started
    finally:
        for sock in sockets:
            sock.close()
    RECORD.append(
        Outcome("tcp", "200 idle half-preface connections held open", "tcp", f"calls still served ({elapsed:.2f} s)")
    )
    assert elapsed < 5
    assert_intact(server, kv)


# -- malformed protobuf through a real gRPC channel -------------------------------------------


def _varint_field(method: str) -> int:
    """A varint field of the request (its number), or 15, unknown to all."""
    fields = SERVICE.methods_by_name[method].input_type.fields
    return next((f.number for f in fields if f.cpp_type in (f.CPPTYPE_INT32, f.CPPTYPE_INT64, f.CPPTYPE_BOOL)), 15)


MALFORMED: list[tuple[str, Callable[[str], bytes]]] = [
    ("truncated varint", lambda m: bytes([_varint_field(m) << 3]) + b"\xff\xff"),
    ("truncated tag", lambda m: b"\x80"),
    ("length past the end (field 1 says 127 B, has 3)", lambda m: b"\x0a\x7fabc"),
    ("length past the end (2^32 varint)", lambda m: b"\x12\xff\xff\xff\xff\x0f"),
    ("invalid wire type 7", lambda m: b"\x0f\x00"),
    ("unterminated group", lambda m: b"\x0b"),
    ("end-group without start", lambda m: b"\x0c"),
    ("100000 nested groups", lambda m: b"\x0b" * 100_000),
    ("random bytes 5 B (seed 7)", lambda m: _random(7, 5)),
    ("random bytes 300 B (seed 8)", lambda m: _random(8, 300)),
]
# Well-formed protobuf with odd content: protobuf semantics decide, the server must not fail.
ODD_BUT_VALID: list[tuple[str, Callable[[str], bytes]]] = [
    ("empty body", lambda m: b""),
    ("field 1 with wrong wire type (varint)", lambda m: b"\x08\x01"),
    ("unknown field 99", lambda m: b"\x9a\x06\x03abc"),
]
INVALID_UTF8 = [
    ("\\xff\\xfe", b"\xff\xfe"),
    ("overlong NUL \\xc0\\x80", b"\xc0\x80"),
    ("encoded surrogate \\xed\\xa0\\x80", b"\xed\xa0\x80"),
    ("truncated 4-byte \\xf0\\x9f\\x98", b"\xf0\x9f\x98"),
    ("above U+10FFFF \\xf4\\x90\\x80\\x80", b"\xf4\x90\x80\x80"),
]


def call_raw(channel: grpc.Channel, path: str, body: bytes, timeout: float = 10) -> tuple[Code, str | None, str]:
    """Call with raw bytes; return (status code, ErrorInfo reason, details)."""
    rpc = channel.unary_unary(path)  # no serializers: bytes in, bytes out
    try:
        rpc(body, timeout=timeout)
    except grpc.RpcError as err:
        reason = None
        status = rpc_status.from_call(err)
        for detail in status.details if status else ():
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
        return err.code(), reason, err.details() or ""
    return Code.OK, None, ""


def _label(code: Code, reason: str | None) -> str:
    return code.name + (f"/{reason}" if reason else "")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("case", "body"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_protobuf_is_invalid_argument(server, kv, channel, method, case, body):
    data = body(method)
    code, reason, details = call_raw(channel, f"/kvgrpc.v1.KeyValue/{method}", data)
    RECORD.append(Outcome("protobuf", case, method, _label(code, reason)))
    if case.startswith("random"):
        # Random bytes may parse by chance; whatever they mean, never INTERNAL.
        assert code is not Code.INTERNAL, details
        assert code in (Code.OK, Code.NOT_FOUND) or (code, reason) == (Code.INVALID_ARGUMENT, "MALFORMED_REQUEST")
    else:
        assert (code, reason) == (Code.INVALID_ARGUMENT, "MALFORMED_REQUEST"), details
    assert_intact(server, kv)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("case", "body"), ODD_BUT_VALID, ids=[c[0] for c in ODD_BUT_VALID])
def test_odd_but_valid_protobuf_never_fails_internally(server, kv, channel, method, case, body):
    code, reason, details = call_raw(channel, f"/kvgrpc.v1.KeyValue/{method}", body(method))
    RECORD.append(Outcome("protobuf", case, method, _label(code, reason)))
    # Every field keeps its default: an empty key is INVALID_KEY; requests
    # without a key (ListKeys lists everything, Batch runs nothing) succeed.
    expected = (Code.OK, None) if method not in KEYED_METHODS else (Code.INVALID_ARGUMENT, "INVALID_KEY")
    assert (code, reason) == expected, details
    assert_intact(server, kv)


STRING_FIELDS = [(m, "key", 1) for m in KEYED_METHODS] + [("ListKeys", "prefix", 1), ("ListKeys", "after", 3)]


@pytest.mark.parametrize(("method", "field", "number"), STRING_FIELDS, ids=[f"{m}.{f}" for m, f, _ in STRING_FIELDS])
@pytest.mark.parametrize(("case", "raw"), INVALID_UTF8, ids=[c[0] for c in INVALID_UTF8])
def test_invalid_utf8_in_string_fields_is_malformed(server, kv, channel, method, field, number, case, raw):
    body = bytes([number << 3 | 2, len(raw)]) + raw
    code, reason, details = call_raw(channel, f"/kvgrpc.v1.KeyValue/{method}", body)
    RECORD.append(Outcome("utf-8", f"invalid UTF-8 {case} in {field}", method, _label(code, reason)))
    assert (code, reason) == (Code.INVALID_ARGUMENT, "MALFORMED_REQUEST"), details
    assert_intact(server, kv)


# -- calls gRPC itself refuses --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "path"),
    [
        ("unknown method", "/kvgrpc.v1.KeyValue/Teleport"),
        ("unknown service", "/kvgrpc.v9.Nope/Get"),
        ("method name case-folded", "/kvgrpc.v1.KeyValue/get"),
        ("path without service", "/Get"),
    ],
)
def test_unknown_method_is_unimplemented(server, kv, channel, case, path):
    code, reason, _ = call_raw(channel, path, b"")
    RECORD.append(Outcome("grpc", case, path, _label(code, reason)))
    assert code is Code.UNIMPLEMENTED
    assert_intact(server, kv)


@pytest.mark.parametrize("method", ["Set", "Get", "ListKeys"])
def test_message_over_the_limit_is_resource_exhausted(server, kv, channel, method):
    body = b"\x12" + b"\x80\x80\x80\x01" + b"x" * (2 << 20)  # field 2 (bytes): 2 MiB
    code, reason, details = call_raw(channel, f"/kvgrpc.v1.KeyValue/{method}", body)
    RECORD.append(Outcome("grpc", "2 MiB message (limit ~1 MiB + 68 KiB)", method, _label(code, reason)))
    assert code is Code.RESOURCE_EXHAUSTED, details
    assert_intact(server, kv)


def test_concurrent_malformed_calls(server, kv, channel):
    """Sixteen threads of mixed garbage at once: the pool must not wedge."""
    results: list[str] = []
    errors: list[BaseException] = []

    def hammer(i: int) -> None:
        try:
            for j in range(20):
                body = _random(1000 * i + j, 1 + (i * j) % 200)
                code, reason, _ = call_raw(channel, f"/kvgrpc.v1.KeyValue/{METHODS[(i + j) % len(METHODS)]}", body)
                results.append(_label(code, reason))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    summary = ", ".join(f"{label} x{results.count(label)}" for label in sorted(set(results)))
    RECORD.append(Outcome("grpc", "320 random-bytes calls from 16 threads at once", "mixed", summary))
    assert not any(label.startswith("INTERNAL") for label in results)
    assert_intact(server, kv)
