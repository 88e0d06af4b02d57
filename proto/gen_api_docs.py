"""Print a Markdown API reference for the kvgrpc contract, from its comments.

    python proto/gen_api_docs.py > docs/api.md

`make docs` runs exactly that. The reference is built from protoc's
descriptors with source info (the comments in the .proto are the
documentation), so it says what the contract says and nothing else:
the file comment, the service and each RPC (request -> response, with its
comment and so its error contract), then each message with a table of its
fields. The output is deterministic; tests/test_api_docs.py regenerates it
and fails if the committed docs/api.md differs.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2

PROTO_ROOT = Path(__file__).resolve().parent
PROTO = "kvgrpc/v1/keyvalue.proto"

F = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    F.TYPE_DOUBLE: "double",
    F.TYPE_FLOAT: "float",
    F.TYPE_INT64: "int64",
    F.TYPE_UINT64: "uint64",
    F.TYPE_INT32: "int32",
    F.TYPE_FIXED64: "fixed64",
    F.TYPE_FIXED32: "fixed32",
    F.TYPE_BOOL: "bool",
    F.TYPE_STRING: "string",
    F.TYPE_BYTES: "bytes",
    F.TYPE_UINT32: "uint32",
    F.TYPE_SFIXED32: "sfixed32",
    F.TYPE_SFIXED64: "sfixed64",
    F.TYPE_SINT32: "sint32",
    F.TYPE_SINT64: "sint64",
}

# Paths into FileDescriptorProto, as in descriptor.proto's field numbers.
SYNTAX, MESSAGE, ENUM, SERVICE = 12, 4, 5, 6
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM = 2, 3, 4
ENUM_VALUE, SERVICE_METHOD = 2, 2


def load(proto: str = PROTO) -> descriptor_pb2.FileDescriptorProto:
    """Compile `proto` with grpc_tools' protoc, keeping the comments."""
    well_known = resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "descriptor.pb"
        result = subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"--proto_path={PROTO_ROOT}", f"--proto_path={well_known}",
             "--include_source_info", f"--descriptor_set_out={out}", proto],
            capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise SystemExit(f"protoc failed on {proto}:\n{result.stderr}")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    (file,) = [f for f in files if f.name == proto]
    return file


class Comments:
    """Leading comments by descriptor path, with the comment markers' indent removed."""

    def __init__(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        self._by_path = {tuple(loc.path): loc.leading_comments for loc in file.source_code_info.location}

    def __call__(self, *path: int) -> str:
        lines = self._by_path.get(path, "").splitlines()
        lines = [line[1:] if line.startswith(" ") else line for line in lines]
        return "\n".join(line.rstrip() for line in lines).strip()


def one_line(text: str) -> str:
    """A comment as a Markdown table cell: one line, pipes escaped."""
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
    return "<br><br>".join(p for p in paragraphs if p).replace("|", "\\|")


def anchor(name: str) -> str:
    """The id GitHub gives a `### Name` heading."""
    return "".join(c for c in name.lower() if c.isalnum() or c in "-_")


def local_name(type_name: str, package: str) -> str:
    name = type_name.lstrip(".")
    return name.removeprefix(package + ".") if package else name


def type_link(type_name: str, package: str, documented: set[str]) -> str:
    name = local_name(type_name, package)
    return f"[`{name}`](#{anchor(name)})" if name in documented else f"`{type_name.lstrip('.')}`"


def render(file: descriptor_pb2.FileDescriptorProto) -> str:
    comment = Comments(file)
    package = file.package
    out: list[str] = []
    emit = out.append

    # Every message and enum, nested ones too, with its dotted name and path.
    messages: list[tuple[str, descriptor_pb2.DescriptorProto, tuple[int, ...]]] = []
    enums: list[tuple[str, descriptor_pb2.EnumDescriptorProto, tuple[int, ...]]] = []
    map_entries: dict[str, descriptor_pb2.DescriptorProto] = {}

    def collect(message: descriptor_pb2.DescriptorProto, prefix: str, path: tuple[int, ...]) -> None:
        name = prefix + message.name
        if message.options.map_entry:
            map_entries[name] = message
            return
        messages.append((name, message, path))
        for i, nested in enumerate(message.nested_type):
            collect(nested, name + ".", (*path, MESSAGE_NESTED, i))
        for i, enum in enumerate(message.enum_type):
            enums.append((f"{name}.{enum.name}", enum, (*path, MESSAGE_ENUM, i)))

    for i, message in enumerate(file.message_type):
        collect(message, "", (MESSAGE, i))
    enums[:0] = [(enum.name, enum, (ENUM, i)) for i, enum in enumerate(file.enum_type)]
    documented = {name for name, _, _ in messages} | {name for name, _, _ in enums}

    def field_type(field: descriptor_pb2.FieldDescriptorProto) -> str:
        if field.type_name and local_name(field.type_name, package) in map_entries:
            key, value = map_entries[local_name(field.type_name, package)].field
            return f"map<{field_type(key)}, {field_type(value)}>"
        base = type_link(field.type_name, package, documented) if field.type_name else f"`{SCALARS[field.type]}`"
        if field.label == F.LABEL_REPEATED:
            return f"repeated {base}"
        if field.proto3_optional or (field.label == F.LABEL_OPTIONAL and file.syntax == "proto2"):
            return f"optional {base}"
        if field.label == F.LABEL_REQUIRED:
            return f"required {base}"
        return base

    emit(f"# {package} API reference")
    emit("")
    emit(f"<!-- Generated from proto/{file.name} by proto/gen_api_docs.py (`make docs`). Do not edit. -->")
    emit("")
    emit(f"Package `{package}`, defined in [`proto/{file.name}`](../proto/{file.name}).")
    if comment(SYNTAX):
        emit("")
        emit(comment(SYNTAX))

    for s, service in enumerate(file.service):
        emit("")
        emit(f"## Service {service.name}")
        emit("")
        emit(f"Full name: `{package}.{service.name}`.")
        if comment(SERVICE, s):
            emit("")
            emit(comment(SERVICE, s))
        emit("")
        emit("| RPC | Request | Response |")
        emit("| --- | --- | --- |")
        for method in service.method:
            request = type_link(method.input_type, package, documented)
            response = type_link(method.output_type, package, documented)
            emit(f"| [`{method.name}`](#{anchor(method.name)}) | {request} | {response} |")
        for m, method in enumerate(service.method):
            request = ("stream " if method.client_streaming else "") + type_link(method.input_type, package, documented)
            response = ("stream " if method.server_streaming else "") + type_link(
                method.output_type, package, documented
            )
            emit("")
            emit(f"### {method.name}")
            emit("")
            emit(f"{request} → {response}")
            if comment(SERVICE, s, SERVICE_METHOD, m):
                emit("")
                emit(comment(SERVICE, s, SERVICE_METHOD, m))

    if messages:
        emit("")
        emit("## Messages")
    for name, message, path in messages:
        emit("")
        emit(f"### {name}")
        if comment(*path):
            emit("")
            emit(comment(*path))
        emit("")
        if not message.field:
            emit("No fields.")
            continue
        emit("| Field | Number | Type | Description |")
        emit("| --- | --- | --- | --- |")
        for f, field in enumerate(message.field):
            cell = one_line(comment(*path, MESSAGE_FIELD, f))
            if field.HasField("oneof_index") and not field.proto3_optional:
                oneof = message.oneof_decl[field.oneof_index].name
                cell = f"(oneof `{oneof}`) {cell}".rstrip()
            emit(f"| `{field.name}` | {field.number} | {field_type(field)} | {cell} |")

    if enums:
        emit("")
        emit("## Enums")
    for name, enum, path in enums:
        emit("")
        emit(f"### {name}")
        if comment(*path):
            emit("")
            emit(comment(*path))
        emit("")
        emit("| Value | Number | Description |")
        emit("| --- | --- | --- |")
        for v, value in enumerate(enum.value):
            emit(f"| `{value.name}` | {value.number} | {one_line(comment(*path, ENUM_VALUE, v))} |")

    return "\n".join(out) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 1:
        raise SystemExit(__doc__)
    sys.stdout.buffer.write(render(load()).encode("utf-8"))  # UTF-8 whatever the locale
