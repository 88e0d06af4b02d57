"""The `kvgrpc` command: `kvgrpc serve` runs a server, the rest are client calls.

Exit codes: 0 success; 1 a "no" answer (key not found, exists false, a
conditional write that did not apply); 2 a usage error (bad flags or a
request the server rejected as invalid); 3 any other failure (server
unreachable, deadline exceeded, internal error).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import NoReturn

from kvgrpc.errors import KVError, KVInvalidArgumentError, KVNotFoundError
from kvgrpc.ports import IKeyValueAdapter
from kvgrpc.validation import MAX_PAGE_LIMIT

EXIT_OK, EXIT_NO, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3
DEFAULT_TARGET = "127.0.0.1:50051"


def _positive(kind: Callable[[str], float | int]) -> Callable[[str], float | int]:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not value > 0 or value != value:  # rejects 0, negatives and NaN
            raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _env(name: str, default: object) -> object:
    """A flag's default: the KVGRPC_* environment variable, else `default`.

    argparse runs string defaults through the flag's `type`, so a bad
    environment value fails exactly like a bad flag.
    """
    return os.environ.get(f"KVGRPC_{name}", default)


def _env_flag(name: str) -> bool:
    """A boolean switch's default: KVGRPC_<name> set to 1, true or yes."""
    return os.environ.get(f"KVGRPC_{name}", "") in ("1", "true", "yes")


def _add_serve(commands: argparse._SubParsersAction) -> None:
    from kvgrpc.server import ServerConfig

    defaults = {f.name: f.default for f in fields(ServerConfig)}
    serve = commands.add_parser(
        "serve",
        help="run a kvgrpc server",
        description="Run a kvgrpc server. Every flag can also be set by the environment variable named in its help.",
    )
    options: list[tuple[str, Callable[[str], object], str, str]] = [
        ("listen", str, "HOST:PORT", "address to listen on; port 0 picks a free port"),
        ("store", str, "URL", "store URL: memory://, sqlite:///relative/path or sqlite:////absolute/path"),
        ("grace", _positive(float), "SECONDS", "time in-flight calls get to finish after SIGTERM/SIGINT"),
        ("max_key_bytes", _positive(int), "BYTES", "largest key accepted, in bytes of UTF-8"),
        ("max_value_bytes", _positive(int), "BYTES", "largest value accepted"),
        ("sweep_interval", _positive(float), "SECONDS", "time between sweeps that delete expired keys"),
        ("workers", _positive(int), "N", "threads serving calls"),
        ("metrics_listen", str, "HOST:PORT", "serve Prometheus metrics at http://HOST:PORT/metrics (off when unset)"),
        ("health_interval", _positive(float), "SECONDS", "how often a networked store (Redis) is pinged for health"),
        ("tls_cert", str, "FILE", "serve TLS with this PEM certificate chain (with --tls-key); re-read on SIGHUP"),
        ("tls_key", str, "FILE", "the PEM private key of --tls-cert"),
        ("tls_client_ca", str, "FILE", "require client certificates signed by this PEM CA (mTLS)"),
        ("auth_tokens", str, "FILE", "require bearer tokens: '<token> [<key-prefix>]' per line; re-read on SIGHUP"),
        ("max_page_size", _positive(int), "N", "largest ListKeys page a client may ask for (at most 1000)"),
        ("max_concurrent_rpcs", _positive(int), "N", "calls in progress at once; more get RESOURCE_EXHAUSTED"),
        ("max_streams_per_connection", _positive(int), "N", "concurrent calls one connection may carry"),
        ("max_connection_age", _positive(float), "SECONDS", "close connections this old so clients rebalance"),
    ]
    for name, kind, metavar, text in options:
        env = name.upper()
        serve.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=kind,
            metavar=metavar,
            default=_env(env, defaults[name]),
            help=f"{text} (env KVGRPC_{env}; default %(default)s)",
        )
    serve.add_argument(
        "--sqlite-synchronous",
        choices=["normal", "full", "extra"],
        type=str.lower,
        default=_env("SQLITE_SYNCHRONOUS", None),
        help="SQLite durability: normal (WAL default) survives a crash of the server process; full and extra "
        "also survive power loss, at an fsync per commit (env KVGRPC_SQLITE_SYNCHRONOUS; default: the store "
        "URL's synchronous option, else normal)",
    )
    serve.add_argument(
        "--reflection",
        choices=["open", "token", "off"],
        default=_env("REFLECTION", defaults["reflection"]),
        help="server reflection: open to all, needing a token when --auth-tokens is set, or off "
        "(env KVGRPC_REFLECTION; default %(default)s)",
    )
    serve.add_argument(
        "--reuse-port",
        action="store_true",
        default=_env_flag("REUSE_PORT"),
        help="let several kvgrpc processes on one SQLite file or Redis share --listen (SO_REUSEPORT); "
        "the kernel spreads connections over them (env KVGRPC_REUSE_PORT=1)",
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        default=_env_flag("INSECURE"),
        help="allow listening beyond loopback without TLS or tokens, when something else secures the "
        "traffic such as a mesh sidecar terminating mTLS (env KVGRPC_INSECURE=1)",
    )
    serve.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="log verbosity (env KVGRPC_LOG_LEVEL; default %(default)s)",
    )
    serve.add_argument(
        "--log-format",
        default=_env("LOG_FORMAT", "text"),
        choices=["text", "json"],
        type=str.lower,
        help="one line per event as text or as a JSON object (env KVGRPC_LOG_FORMAT; default %(default)s)",
    )


def _add_client_commands(commands: argparse._SubParsersAction) -> None:
    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text)

    def ttl_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
        parser.add_argument("--ttl", type=_positive(int), default=None, metavar="SECONDS", help=help_text)

    p = command("get", "print a key's value (raw bytes) to stdout")
    p.add_argument("key")
    for name, help_text in [
        ("set", "store a value; without VALUE, stdin is read"),
        ("set-if-not-exists", "store a value only if the key is absent; exit 1 if it was present"),
    ]:
        p = command(name, help_text)
        p.add_argument("key")
        p.add_argument("value", nargs="?", help="the value (default: read stdin)")
        ttl_flag(p, "expire after SECONDS")
    p = command("delete", "delete a key; exit 1 if it was absent")
    p.add_argument("key")
    p = command("delete-if-value-matches", "delete a key only if it holds VALUE; exit 1 otherwise")
    p.add_argument("key")
    p.add_argument("value", nargs="?", help="the value it must hold (default: read stdin)")
    p = command("exists", "exit 0 if the key is live, 1 if not")
    p.add_argument("key")
    p = command("list", "print live keys starting with PREFIX, one per line, in code point order")
    p.add_argument("prefix", nargs="?", default="")
    p.add_argument("--limit", type=_positive(int), default=None, help="at most this many keys (default: all)")
    p.add_argument("--after", default=None, help="only keys after this one")
    p = command("ttl", "print the seconds a key has left, or 'none' if it never expires")
    p.add_argument("key")
    p = command("expire", "set a key's TTL (or remove it with --persist); exit 1 if the key is absent")
    p.add_argument("key")
    group = p.add_mutually_exclusive_group(required=True)
    ttl_flag(group, "expire after SECONDS")  # type: ignore[arg-type]
    group.add_argument("--persist", action="store_true", help="remove the TTL: the key never expires")
    p.add_argument("--if-value", default=None, help="only if the key holds this value")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kvgrpc", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--target",
        default=_env("TARGET", DEFAULT_TARGET),
        help="server address for client commands (env KVGRPC_TARGET; default %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=_env("TIMEOUT", 5.0),
        help="seconds each call may take (env KVGRPC_TIMEOUT; default %(default)s)",
    )
    security = parser.add_argument_group("client security (for client commands)")
    security.add_argument(
        "--tls",
        action="store_true",
        default=_env_flag("TLS"),
        help="use TLS, verifying the server with the system's roots (env KVGRPC_TLS=1)",
    )
    for flag, env, text in [
        ("--tls-ca", "TLS_CA", "use TLS, verifying the server with this PEM CA"),
        ("--client-cert", "CLIENT_CERT", "present this PEM client certificate (mTLS; with --client-key)"),
        ("--client-key", "CLIENT_KEY", "the PEM private key of --client-cert"),
        ("--token-file", "TOKEN_FILE", "send the bearer token in this file"),
    ]:
        security.add_argument(flag, metavar="FILE", default=_env(env, None), help=f"{text} (env KVGRPC_{env})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(commands)
    _add_client_commands(commands)
    return parser


def _value(args: argparse.Namespace) -> bytes:
    if args.value is not None:
        return os.fsencode(args.value)  # the argument's bytes as given, even if not valid UTF-8
    return sys.stdin.buffer.read()


def _list_all(kv: IKeyValueAdapter, args: argparse.Namespace) -> int:
    remaining, after = args.limit, args.after
    while remaining is None or remaining > 0:
        page = kv.list_keys(args.prefix, limit=min(remaining or MAX_PAGE_LIMIT, MAX_PAGE_LIMIT), after=after)
        for key in page.keys:
            print(key)
        if remaining is not None:
            remaining -= len(page.keys)
        if page.next_after is None:
            break
        after = page.next_after
    return EXIT_OK


def _read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as err:
        raise ValueError(f"cannot read {what} {path}: {err.strerror or err}") from None


def _security(args: argparse.Namespace) -> dict[str, object]:
    """KeyValueClient's TLS and token arguments from the flags (or env)."""
    options: dict[str, object] = {"tls": args.tls}
    for name, attr in (("root_certificates", "tls_ca"), ("client_cert", "client_cert"), ("client_key", "client_key")):
        path = getattr(args, attr)
        if path:
            options[name] = _read_file(path, attr.replace("_", " "))
    token = os.environ.get("KVGRPC_TOKEN")
    if args.token_file:
        token = _read_file(args.token_file, "token file").decode("utf-8", "replace").strip()
    if token:
        options["token"] = token
    return options


def _run_client(args: argparse.Namespace) -> int:
    from kvgrpc.client import KeyValueClient

    with KeyValueClient(args.target, timeout=args.timeout, **_security(args)) as kv:
        command = args.command
        if command == "get":
            sys.stdout.buffer.write(kv.get(args.key))
            sys.stdout.flush()
        elif command == "set":
            kv.set(args.key, _value(args), ttl=args.ttl)
        elif command == "set-if-not-exists":
            return EXIT_OK if kv.set_if_not_exists(args.key, _value(args), ttl=args.ttl) else EXIT_NO
        elif command == "delete":
            kv.delete(args.key)
        elif command == "delete-if-value-matches":
            return EXIT_OK if kv.delete_if_value_matches(args.key, _value(args)) else EXIT_NO
        elif command == "exists":
            return EXIT_OK if kv.exists(args.key) else EXIT_NO
        elif command == "list":
            return _list_all(kv, args)
        elif command == "ttl":
            ttl = kv.get_ttl(args.key)
            print("none" if ttl is None else ttl)
        elif command == "expire":
            if_value = None if args.if_value is None else os.fsencode(args.if_value)
            return EXIT_OK if kv.expire(args.key, None if args.persist else args.ttl, if_value=if_value) else EXIT_NO
    return EXIT_OK


def _fail(code: int, message: str) -> NoReturn:
    print(f"kvgrpc: {message}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from kvgrpc.server import ServerConfig, logs, serve
        from kvgrpc.server.app import ConfigError
        from kvgrpc.server.auth import TokenFileError
        from kvgrpc.server.stores import StoreURLError
        from kvgrpc.server.tls import TLSConfigError

        logs.configure(args.log_level, args.log_format)
        config = ServerConfig(**{f.name: getattr(args, f.name) for f in fields(ServerConfig)})
        try:
            return serve(config)
        except (StoreURLError, ConfigError, TLSConfigError, TokenFileError, OSError) as err:
            _fail(EXIT_USAGE, str(err))
    try:
        return _run_client(args)
    except KVNotFoundError as err:
        _fail(EXIT_NO, str(err))
    except (KVInvalidArgumentError, TypeError, ValueError) as err:
        _fail(EXIT_USAGE, str(err))
    except KVError as err:
        _fail(EXIT_FAILURE, str(err))


if __name__ == "__main__":
    sys.exit(main())
