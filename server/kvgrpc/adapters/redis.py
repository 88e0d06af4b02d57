"""`RedisAdapter`: the port on Redis, standalone or cluster, so that several
`kvgrpc serve` replicas can share one store.

Every operation is one Redis command or one server-side Lua script, so the
conditional writes are as atomic as Redis makes them: `SET NX EX` for
`set_if_not_exists`, scripts for the rest. Redis expires keys itself; there
is no sweeper.

Besides the data keys (`prefix + key`), the adapter keeps two kinds of
bookkeeping keys, each a Lua-script write atomic with the data write it
belongs to: a fencing counter per fenced key (kept forever, like
`PythonAdapter`'s), and the outcome of each conditional write that carried a
`request_id` (expiring after ten minutes). Their names start with a hash tag
and hold 0xFF bytes, which no UTF-8 key has, so they never collide with a key
and `list_keys` never shows them:

    {<slot tag>}\xffkvgrpc\xff<prefix>\xff<kind>\xff<name>

The slot tag (empty on a standalone Redis) puts a bookkeeping key in the same
cluster hash slot as its data key, so one script may touch both.
"""

from __future__ import annotations

import binascii
import bisect
import threading
from types import TracebackType

import redis
import redis.exceptions as rex
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.crc import key_slot

from kvgrpc.ports import IKeyValueAdapter, KVInvalidArgumentError, KVKeyPage, KVNotFoundError, KVUnavailableError
from kvgrpc.validation import (
    DEFAULT_PAGE_LIMIT,
    ValueLike,
    check_key,
    check_limit,
    check_optional_ttl,
    check_prefix,
    check_request_id,
    to_bytes,
)

__all__ = ["RedisAdapter"]

SCAN_COUNT = 1000  # keys Redis looks at per SCAN call

REQUEST_MEMORY_MS = 600_000  # how long the outcome of a request id is remembered (as PythonAdapter)
_REUSED = -1  # what a script answers for a request id already used for another request

# Every write script: ARGV[1] is the request's signature (method and key) and
# ARGV[2] how long to remember its outcome; its last KEYS entry, when
# present, is where the outcome of its request id is recorded, as
# "<outcome>:<signature>". A repeat of the id answers the recorded outcome
# without writing; an id recorded for another request answers -1.
_RECORDS = """
local function recall(rk)
  local rec = redis.call('GET', rk)
  if not rec then return nil end
  local colon = string.find(rec, ':', 1, true)
  if colon and string.sub(rec, colon + 1) == ARGV[1] then
    return tonumber(string.sub(rec, 1, colon - 1))
  end
  return -1
end
local function remember(rk, outcome)
  redis.call('SET', rk, outcome .. ':' .. ARGV[1], 'PX', ARGV[2])
end
"""


def _once(record_key: str, body: str) -> str:
    """A write script that runs `body` (which sets `outcome`) once per request
    id: a repeat answers the outcome recorded by the first run."""
    return (
        _RECORDS
        + f"""
local rk = {record_key}
if rk then
  local known = recall(rk)
  if known then return known end
end
{body.strip()}
if rk then remember(rk, outcome) end
return outcome
"""
    )


# KEYS: data, fencing counter[, record]. ARGV[3]: value; ARGV[4]: TTL in
# seconds or ''; ARGV[5]: '1' to count a fence. Returns 0 (not inserted), or
# 1 / the new fencing token.
_SET_IF_NOT_EXISTS = _once(
    "KEYS[3]",
    """
local ok
if ARGV[4] == '' then
  ok = redis.call('SET', KEYS[1], ARGV[3], 'NX')
else
  ok = redis.call('SET', KEYS[1], ARGV[3], 'NX', 'EX', ARGV[4])
end
local outcome = 0
if ok then
  if ARGV[5] == '1' then outcome = redis.call('INCR', KEYS[2]) else outcome = 1 end
end
""",
)

# KEYS: data[, record]. ARGV[3]: 'any', or 'match' to delete only if the
# value is ARGV[4]. Returns 1 if deleted.
_DELETE = _once(
    "KEYS[2]",
    """
local outcome = 0
if ARGV[3] == 'any' or redis.call('GET', KEYS[1]) == ARGV[4] then
  outcome = redis.call('DEL', KEYS[1])
end
""",
)

# KEYS: data[, record]. ARGV[3]: TTL in seconds, or '' to remove it;
# ARGV[4] (optional): the value the key must hold. Returns 1 if changed.
_EXPIRE = _once(
    "KEYS[2]",
    """
local outcome = 1
if ARGV[4] then
  if redis.call('GET', KEYS[1]) ~= ARGV[4] then outcome = 0 end
elseif redis.call('EXISTS', KEYS[1]) == 0 then
  outcome = 0
end
if outcome == 1 then
  if ARGV[3] == '' then
    redis.call('PERSIST', KEYS[1])
  else
    redis.call('EXPIRE', KEYS[1], ARGV[3])
  end
end
""",
)

# Cluster only, before a write with a request id: claim the id for this
# request store-wide (its record lives in the data key's slot). KEYS: claim.
# Returns 1 if the id is free or already this request's, -1 if another's.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then
  if current == ARGV[1] then return 1 end
  return -1
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_SLOT_TAGS: list[bytes] = []
_SLOT_TAGS_LOCK = threading.Lock()


def _slot_tag(slot: int) -> bytes:
    """A short string (hex digits, no braces) that Redis Cluster hashes to `slot`."""
    if not _SLOT_TAGS:
        with _SLOT_TAGS_LOCK:
            if not _SLOT_TAGS:
                table: list[bytes | None] = [None] * 16384
                missing, i = 16384, 0
                while missing:  # about 300k CRCs, some 0.1 s, once per process
                    tag = b"%x" % i
                    found = binascii.crc_hqx(tag, 0) & 16383
                    if table[found] is None:
                        table[found] = tag
                        missing -= 1
                    i += 1
                _SLOT_TAGS.extend(t for t in table if t is not None)
    return _SLOT_TAGS[slot]


def _reused() -> KVInvalidArgumentError:
    return KVInvalidArgumentError(
        "request_id was already used for a different request; use a fresh id per request",
        reason="REQUEST_ID_REUSED",
        field="request_id",
    )


# Errors that mean "Redis cannot be reached or cannot serve right now": the
# caller gets KVUnavailableError (gRPC UNAVAILABLE). Anything else is a bug or
# a misconfiguration and propagates (the server answers INTERNAL and logs it).
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    rex.ConnectionError,  # includes authentication failures, BusyLoadingError, pool exhaustion
    rex.TimeoutError,
    rex.ClusterError,  # ClusterDownError, MasterDownError
    rex.TryAgainError,  # a slot in migration
    rex.ReadOnlyError,  # wrote to a replica, e.g. during failover
    rex.OutOfMemoryError,  # maxmemory reached, writes refused
    getattr(rex, "SlotNotCoveredError", rex.ClusterError),
    getattr(rex, "RedisClusterUnreachableError", rex.ClusterError),
    ConnectionError,  # a raw OSError from the socket layer
)


class _Translate:
    """Context manager: Redis transport failures become KVUnavailableError."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and isinstance(exc, _UNAVAILABLE):
            raise unavailable(exc) from exc


_translate = _Translate()


def unavailable(err: BaseException) -> KVUnavailableError:
    """A KVUnavailableError telling what went wrong with Redis (never credentials)."""
    if isinstance(err, rex.AuthenticationError):
        what = "Redis rejected the credentials"
    elif isinstance(err, (rex.TimeoutError, TimeoutError)):
        what = "Redis did not answer in time"
    elif isinstance(err, rex.BusyLoadingError):
        what = "Redis is loading its dataset"
    elif isinstance(err, rex.ReadOnlyError):
        what = "Redis refused a write (read-only replica, failover in progress?)"
    elif isinstance(err, rex.OutOfMemoryError):
        what = "Redis refused a write (maxmemory reached)"
    elif isinstance(err, (rex.ClusterError, rex.TryAgainError, rex.RedisClusterException)):
        what = "Redis cluster unavailable"
    else:
        what = "Redis unreachable"
    detail = str(err).strip()
    return KVUnavailableError(f"{what}: {detail}" if detail else what)


def _glob_escape(raw: bytes) -> bytes:
    """`raw` as a literal Redis glob pattern (backslash before * ? [ ] \\)."""
    out = bytearray()
    for byte in raw:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)


class RedisAdapter(IKeyValueAdapter):
    """A thread-safe `IKeyValueAdapter` on a redis-py client.

    `client` is a `redis.Redis` or a `redis.cluster.RedisCluster` created with
    `decode_responses=False` (the default); the adapter owns it and
    `close()` closes it. `prefix` namespaces a tenant: it is put in front of
    every key sent to Redis and taken off every key listed, so tenants on one
    Redis never see each other's keys.

    Redis connection failures and timeouts raise `KVUnavailableError`; the
    client's pool reconnects by itself once Redis is back. `ping()` raises the
    same while Redis is unreachable (the server's health follows it).

    A conditional write with a `request_id` is one script that records its
    outcome next to the write; in a cluster the id is first claimed in its
    own slot, so reusing it for another key is caught store-wide (one extra
    round trip). The records take memory in Redis for ten minutes each.

    `list_keys` walks every key under the prefix with SCAN (on every primary
    of a cluster) for each page, so a page costs time in proportion to the
    number of keys under the prefix, not to the page size.
    """

    def __init__(self, client: redis.Redis | RedisCluster, *, prefix: str = "") -> None:
        prefix = check_prefix(prefix, field="prefix")
        if client.get_encoder().decode_responses:
            raise ValueError("RedisAdapter needs a client created with decode_responses=False")
        self._client = client
        self._prefix = prefix.encode("utf-8")
        self._cluster = isinstance(client, RedisCluster)
        self._set_if_not_exists_script = client.register_script(_SET_IF_NOT_EXISTS)
        self._delete_script = client.register_script(_DELETE)
        self._expire_script = client.register_script(_EXPIRE)
        self._claim_script = client.register_script(_CLAIM)

    @property
    def prefix(self) -> str:
        return self._prefix.decode("utf-8")

    @property
    def client(self) -> redis.Redis | RedisCluster:
        return self._client

    def _k(self, key: str) -> bytes:
        return self._prefix + key.encode("utf-8")

    def _aux(self, kind: bytes, name: bytes, near: bytes | None) -> bytes:
        """A bookkeeping key; in a cluster, in the slot of data key `near`."""
        tag = _slot_tag(key_slot(near)) if self._cluster and near is not None else b""
        return b"{" + tag + b"}\xffkvgrpc\xff" + self._prefix + b"\xff" + kind + b"\xff" + name

    def _write(
        self,
        script: Script,
        method: bytes,
        request_id: str | None,
        keys: list[bytes],
        args: list[bytes],
    ) -> int:
        """Run a write script on `keys` (data key first), once per request id."""
        data_key = keys[0]
        signature = method + b"\xff" + data_key
        if request_id is not None:
            rid = request_id.encode("utf-8")
            if self._cluster:
                # The record sits in the data key's slot; the claim, in the
                # id's own, makes the id unique across the whole store.
                claim = self._aux(b"rid", rid, None)
                if self._run(self._claim_script, [claim], [signature, REQUEST_MEMORY_MS]) == _REUSED:
                    raise _reused()
                keys = [*keys, self._aux(b"req", rid, data_key)]
            else:
                keys = [*keys, self._aux(b"req", rid, None)]
        outcome = int(self._run(script, keys, [signature, REQUEST_MEMORY_MS, *args]))
        if outcome == _REUSED:
            raise _reused()
        return outcome

    @staticmethod
    def _run(script: Script, keys: list[bytes], args: list[bytes | int]) -> int:
        with _translate:
            return script(keys=keys, args=args)

    def ping(self) -> None:
        """Return if Redis answers (every primary, for a cluster); KVUnavailableError if not."""
        with _translate:
            if self._cluster:
                self._client.ping(target_nodes=RedisCluster.PRIMARIES)
            else:
                self._client.ping()

    def get(self, key: str) -> bytes:
        key = check_key(key)
        with _translate:
            value = self._client.get(self._k(key))
        if value is None:
            raise KVNotFoundError(key)
        return value

    def set(self, key: str, value: ValueLike, ttl: int | None = None) -> None:
        key, data, ttl = check_key(key), to_bytes(value), check_optional_ttl(ttl)
        with _translate:
            self._client.set(self._k(key), data, ex=ttl)

    def set_if_not_exists(
        self, key: str, value: ValueLike, ttl: int | None = None, *, request_id: str | None = None
    ) -> bool:
        key, data, ttl = check_key(key), to_bytes(value), check_optional_ttl(ttl)
        request_id = check_request_id(request_id)
        if request_id is None:
            with _translate:
                return bool(self._client.set(self._k(key), data, ex=ttl, nx=True))
        return self._insert(key, data, ttl, request_id, fence=False) > 0

    def set_if_not_exists_fenced(
        self, key: str, value: ValueLike, ttl: int | None = None, *, request_id: str | None = None
    ) -> int | None:
        key, data, ttl = check_key(key), to_bytes(value), check_optional_ttl(ttl)
        request_id = check_request_id(request_id)
        return self._insert(key, data, ttl, request_id, fence=True) or None

    def _insert(self, key: str, data: bytes, ttl: int | None, request_id: str | None, *, fence: bool) -> int:
        data_key = self._k(key)
        fence_key = self._aux(b"fence", key.encode("utf-8"), data_key)
        method = b"SetIfNotExistsFenced" if fence else b"SetIfNotExists"
        args = [data, b"" if ttl is None else str(ttl).encode(), b"1" if fence else b"0"]
        return self._write(self._set_if_not_exists_script, method, request_id, [data_key, fence_key], args)

    def delete(self, key: str, *, request_id: str | None = None) -> None:
        key = check_key(key)
        request_id = check_request_id(request_id)
        if request_id is None:
            with _translate:
                removed = self._client.delete(self._k(key))
        else:
            removed = self._write(self._delete_script, b"Delete", request_id, [self._k(key)], [b"any"])
        if not removed:
            raise KVNotFoundError(key)

    def delete_if_value_matches(self, key: str, value: ValueLike, *, request_id: str | None = None) -> bool:
        key, data = check_key(key), to_bytes(value)
        request_id = check_request_id(request_id)
        args = [b"match", data]
        return bool(self._write(self._delete_script, b"DeleteIfValueMatches", request_id, [self._k(key)], args))

    def exists(self, key: str) -> bool:
        key = check_key(key)
        with _translate:
            return bool(self._client.exists(self._k(key)))

    def list_keys(self, prefix: str = "", *, limit: int = DEFAULT_PAGE_LIMIT, after: str | None = None) -> KVKeyPage:
        prefix, limit = check_prefix(prefix, field="prefix"), check_limit(limit)
        if after is not None:
            after = check_prefix(after, field="after")
        full = self._prefix + prefix.encode("utf-8")
        strip = len(self._prefix)
        pattern = _glob_escape(full) + b"*"
        # The smallest limit+1 keys past `after`, kept sorted; SCAN may repeat a key.
        best: list[str] = []
        cap = limit + 1
        with _translate:
            for raw in self._client.scan_iter(match=pattern, count=SCAN_COUNT):
                if not raw.startswith(full):
                    continue
                try:
                    key = raw[strip:].decode("utf-8")
                except UnicodeDecodeError:
                    continue  # not a key this port could have written
                if after is not None and key <= after:
                    continue
                if len(best) == cap and key >= best[-1]:
                    continue
                i = bisect.bisect_left(best, key)
                if i < len(best) and best[i] == key:
                    continue
                best.insert(i, key)
                if len(best) > cap:
                    best.pop()
        if len(best) > limit:
            return KVKeyPage(tuple(best[:limit]), best[limit - 1])
        return KVKeyPage(tuple(best), None)

    def get_ttl(self, key: str) -> int | None:
        key = check_key(key)
        with _translate:
            ms = self._client.pttl(self._k(key))
        if ms == -2:
            raise KVNotFoundError(key)
        if ms == -1:
            return None
        return max(1, -(-ms // 1000))

    def expire(
        self, key: str, ttl: int | None, *, if_value: ValueLike | None = None, request_id: str | None = None
    ) -> bool:
        key, ttl = check_key(key), check_optional_ttl(ttl)
        expected = None if if_value is None else to_bytes(if_value, field="if_value")
        request_id = check_request_id(request_id)
        args = [b"" if ttl is None else str(ttl).encode()]
        if expected is not None:
            args.append(expected)
        return bool(self._write(self._expire_script, b"Expire", request_id, [self._k(key)], args))

    def close(self) -> None:
        self._client.close()
