"""Store URLs: which adapter the server hosts.

    memory://                     in memory, gone when the server stops
    sqlite:///relative/path.db    SQLite file relative to the working directory
    sqlite:////absolute/path.db   SQLite file at an absolute path
    redis://[user:password@]host[:port][/db]         one Redis server (port 6379, db 0 by default)
    rediss://[user:password@]host[:port][/db]        the same over TLS
    redis+cluster://[user:password@]host:port,host:port[,...]
                                  a Redis Cluster, found through any of these startup nodes
    rediss+cluster://...          the same over TLS

SQLite URLs accept query options `journal_mode` (default WAL),
`busy_timeout_ms` (default 5000) and `synchronous` (default NORMAL).

Redis URLs accept `prefix`, a tenant namespace put in front of every key
(`redis://cache:6379/0?prefix=tenant-a:`); several servers sharing one Redis
with different prefixes never see each other's keys. User name and password
are percent-decoded; `redis://:password@host` sends the password alone. A
Redis connection times out after 2 s, a command after 5 s, and nothing is
retried by the Redis client (clients retry what is safe to repeat). A
standalone Redis may be down when the server starts (health is NOT_SERVING
until it answers); a cluster must be reachable at start, to learn its slots.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

from kvgrpc.adapters import PythonAdapter
from kvgrpc.ports import IKeyValueAdapter

_SQLITE_OPTIONS = {"journal_mode", "busy_timeout_ms", "synchronous"}
_REDIS_OPTIONS = {"prefix"}
# scheme -> (TLS, cluster)
_REDIS_SCHEMES = {
    "redis": (False, False),
    "rediss": (True, False),
    "redis+cluster": (False, True),
    "rediss+cluster": (True, True),
}
REDIS_CONNECT_TIMEOUT = 2.0  # seconds to open a connection to Redis
REDIS_SOCKET_TIMEOUT = 5.0  # seconds for Redis to answer a command
_USAGE = (
    "memory://, sqlite:///path (relative), sqlite:////path (absolute), redis://host:port/db, "
    "rediss://host:port/db or redis+cluster://host:port,host:port"
)


def _split_netloc(url: str) -> tuple[str, str, str, str]:
    """scheme, authority, and what follows it (path, query, fragment); no validation."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "", "", url, ""
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    return scheme, rest[:end], rest[end:], sep


def redact(url: str) -> str:
    """The URL with any password replaced, fit for logs."""
    scheme, netloc, tail, sep = _split_netloc(url)
    userinfo, at, hosts = netloc.rpartition("@")
    if not sep or not at:
        return url
    user, colon, _password = userinfo.partition(":")
    # Without a colon the whole user info may well be a password: hide it too.
    return f"{scheme}://{user}:***@{hosts}{tail}" if colon else f"{scheme}://***@{hosts}{tail}"


class StoreURLError(ValueError):
    """A store URL that names no store we can open."""


def open_store(url: str, *, sweep_interval: float | None, sqlite_synchronous: str | None = None) -> IKeyValueAdapter:
    """Open the adapter a store URL names. `sqlite_synchronous` (the
    --sqlite-synchronous flag) overrides the URL's `synchronous` option."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in _REDIS_SCHEMES:
        return _open_redis(url, *_REDIS_SCHEMES[scheme])
    try:
        parts = urlsplit(url)
    except ValueError as err:
        raise StoreURLError(f"bad store URL {redact(url)!r}: {err}; use {_USAGE}") from None
    if parts.scheme == "memory":
        if parts.netloc or parts.path or parts.query:
            raise StoreURLError(f"memory store URL takes no path or options: use 'memory://', not {url!r}")
        return PythonAdapter(sweep_interval=sweep_interval)
    if parts.scheme == "sqlite":
        if parts.netloc or not url.startswith("sqlite:///") or parts.path in ("", "/"):
            raise StoreURLError(
                f"bad SQLite URL {url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
            )
        options = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)))
        unknown = set(options) - _SQLITE_OPTIONS
        if unknown:
            raise StoreURLError(
                f"unknown SQLite option(s) {sorted(unknown)} in {url!r}; known: {sorted(_SQLITE_OPTIONS)}"
            )
        try:
            busy_timeout_ms = int(options.get("busy_timeout_ms", "5000"))
        except ValueError:
            raise StoreURLError(f"busy_timeout_ms must be a whole number of milliseconds in {url!r}") from None
        path = parts.path[1:]  # sqlite:///rel -> "rel"; sqlite:////abs -> "/abs"
        try:
            return PythonAdapter(
                path,
                journal_mode=options.get("journal_mode", "WAL"),
                busy_timeout_ms=busy_timeout_ms,
                synchronous=sqlite_synchronous or options.get("synchronous", "NORMAL"),
                sweep_interval=sweep_interval,
            )
        except ValueError as err:
            raise StoreURLError(f"{url}: {err}") from None
    raise StoreURLError(f"unknown store {redact(url)!r}: use {_USAGE}")


def _host_port(text: str, shown: str) -> tuple[str, int]:
    """`host`, `host:port` or `[v6]:port` (port 6379 if none)."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        ok = bool(bracket) and (not rest or rest.startswith(":"))
        port_text = rest[1:]
    else:
        host, _, port_text = text.partition(":")
        ok = ":" not in port_text
    if not ok:
        raise StoreURLError(f"bad address {text!r} in {shown!r}: write IPv6 addresses as [::1]:6379")
    if not host or any(c in host for c in " @/?#[]"):
        raise StoreURLError(f"missing or bad host in {shown!r}: name each node as host:port")
    if port_text == "":
        return host, 6379
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise StoreURLError(f"bad port {port_text!r} in {shown!r}: use a number from 1 to 65535")
    return host, int(port_text)


def _open_redis(url: str, tls: bool, cluster: bool) -> IKeyValueAdapter:
    import redis
    from redis.backoff import NoBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.exceptions import RedisClusterException, RedisError
    from redis.retry import Retry

    from kvgrpc.adapters.redis import RedisAdapter, unavailable

    shown = redact(url)
    scheme, netloc, tail, _ = _split_netloc(url)
    path, _, query = tail.partition("?")
    query, hash_, _fragment = query.partition("#")
    if "#" in path or hash_:
        raise StoreURLError(f"Redis URL {shown!r} must not have a #fragment")

    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        if not colon:
            raise StoreURLError(
                f"credentials in {shown!r} must be user:password@ or :password@ (percent-encode : @ / in them)"
            )
        username, password = unquote(user) or None, unquote(secret)

    addresses = hostlist.split(",")
    if not cluster and len(addresses) > 1:
        raise StoreURLError(f"{shown!r} names several hosts: use {scheme}+cluster://host:port,host:port for a cluster")
    nodes = [_host_port(address, shown) for address in addresses]

    db = 0
    if path not in ("", "/"):
        number = path[1:]
        if not number.isdigit():
            raise StoreURLError(f"the path of {shown!r} must be a database number such as /0, not {path!r}")
        db = int(number)
        if cluster and db != 0:
            raise StoreURLError(f"a Redis Cluster has only database 0: drop {path!r} from {shown!r}")

    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query), errors="strict")
    except ValueError as err:
        raise StoreURLError(f"malformed options {query!r} in {shown!r} ({err}): use ?prefix=tenant:") from None
    names = [name for name, _ in pairs]
    unknown = sorted(set(names) - _REDIS_OPTIONS)
    if unknown:
        raise StoreURLError(f"unknown Redis option(s) {unknown} in {shown!r}; known: {sorted(_REDIS_OPTIONS)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise StoreURLError(f"option(s) {repeated} given more than once in {shown!r}")
    prefix = dict(pairs).get("prefix", "")

    common = {
        "username": username,
        "password": password,
        "ssl": tls,
        "socket_connect_timeout": REDIS_CONNECT_TIMEOUT,
        "socket_timeout": REDIS_SOCKET_TIMEOUT,
        # No client-side retries: a retried SET NX whose first attempt landed
        # would report False to the caller that holds the key.
        "retry": Retry(NoBackoff(), 0),
    }
    client: redis.Redis | RedisCluster
    if cluster:
        try:
            client = RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in nodes], **common)
        except (RedisError, RedisClusterException) as err:
            raise StoreURLError(
                f"cannot reach the Redis cluster {shown!r}: {unavailable(err)};"
                " check the host:port list and that the cluster is up"
            ) from None
    else:
        (host, port) = nodes[0]
        client = redis.Redis(host=host, port=port, db=db, **common)
    try:
        return RedisAdapter(client, prefix=prefix)
    except ValueError as err:
        client.close()
        raise StoreURLError(f"bad prefix in {shown!r}: {err}") from None
