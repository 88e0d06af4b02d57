"""Property tests: random operation sequences through `KeyValueClient` against
real `kvgrpc serve` processes (memory and SQLite), every answer checked
against the simple model in tests/model.py.

Each hypothesis example works under its own fresh key namespace, so the
examples can share one server. TTLs are all >= 1000 s: nothing expires during
a run, and get_ttl is checked against a window. Generation uses a fixed seed,
so a failure reproduces on every machine.
"""

from __future__ import annotations

import time
import uuid

import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from kvgrpc.client import KeyValueClient
from kvgrpc.ports import KVInvalidArgumentError, KVNotFoundError
from kvgrpc.validation import MAX_TTL_SECONDS
from model import KVModel, as_bytes

MAX_KEY_BYTES = 4096  # the server's default --max-key-bytes
NS_BYTES = 16  # every namespace is "p" + 14 hex digits + "/"

SETTINGS = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Characters that break naive stores: glob and LIKE wildcards, escapes, NUL,
# whitespace, combining marks, the BMP's last code point, the astral plane.
ODD_CHARS = [
    *"*?[]\\%_/",
    "\x00",
    " ",
    "\t",
    "\n",
    "\r",
    "\x7f",
    "\u00a0",
    "\u3000",
    "\u0301",
    "é",
    "键",
    "\uffff",
    "😀",
    "\U0010ffff",
    "a",
    "b",
]
FILLERS = ["a", "\x00", "*", "é", "键", "😀", "\U0010ffff"]  # 1 to 4 UTF-8 bytes each

utf8_chars = st.characters(codec="utf-8")  # every code point but the surrogates
odd_text = st.text(st.sampled_from(ODD_CHARS), max_size=6)


def sized_suffix(head: str, filler: str, key_bytes: int) -> str:
    """A key suffix making namespace + suffix exactly `key_bytes` of UTF-8."""
    target = key_bytes - NS_BYTES
    count = (target - len(head.encode())) // len(filler.encode())
    text = head + filler * count
    return text + "x" * (target - len(text.encode()))


def sized_suffixes(sizes: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    return st.builds(sized_suffix, st.text(st.sampled_from(ODD_CHARS), max_size=3), st.sampled_from(FILLERS), sizes)


long_suffixes = sized_suffixes(st.integers(MAX_KEY_BYTES - 40, MAX_KEY_BYTES))
too_long_suffixes = sized_suffixes(st.integers(MAX_KEY_BYTES + 1, MAX_KEY_BYTES + 4) | st.just(3 * MAX_KEY_BYTES))
key_suffixes = st.one_of(odd_text, odd_text, st.text(utf8_chars, max_size=8), long_suffixes)


def _repeat(chunk: bytes, size: int) -> bytes:
    return (chunk * (size // len(chunk) + 1))[:size]


small_bytes = st.binary(max_size=32)
values = st.one_of(
    st.just(b""),
    small_bytes,
    st.text(utf8_chars, max_size=16),  # sent as UTF-8
    st.builds(bytearray, small_bytes),
    st.builds(memoryview, small_bytes),
    st.builds(_repeat, st.binary(min_size=1, max_size=8), st.integers(1024, 64 * 1024)),
)
ttls = st.one_of(st.none(), st.integers(1000, MAX_TTL_SECONDS), st.just(MAX_TTL_SECONDS))
limits = st.one_of(st.integers(1, 4), st.integers(1, 1000))


class KVMachine(RuleBasedStateMachine):
    keys = Bundle("keys")  # key suffixes this example has written at least once

    def __init__(self, kv: KeyValueClient) -> None:
        super().__init__()
        self.kv = kv
        self.ns = f"p{uuid.uuid4().hex[:14]}/"
        assert len(self.ns) == NS_BYTES
        self.model = KVModel()

    def key(self, suffix: str) -> str:
        return self.ns + suffix

    def expect_not_found(self, key: str, call) -> None:
        try:
            result = call()
        except KVNotFoundError as err:
            assert err.key == key
            return
        raise AssertionError(f"expected KVNotFoundError for {key!r}, got {result!r}")

    def draw_existing(self, data: st.DataObject) -> str | None:
        return data.draw(st.sampled_from(sorted(self.model.rows))) if self.model.rows else None

    # -- writes -------------------------------------------------------------------

    @initialize(target=keys, suffix=key_suffixes, value=values, ttl=ttls)
    def first_key(self, suffix, value, ttl):
        return self.set_new(suffix, value, ttl)

    @rule(target=keys, suffix=key_suffixes, value=values, ttl=ttls)
    def set_new(self, suffix, value, ttl):
        self.set(suffix, value, ttl)
        return suffix

    @rule(suffix=keys | key_suffixes, value=values, ttl=ttls)
    def set(self, suffix, value, ttl):
        now = time.monotonic()
        assert self.kv.set(self.key(suffix), value, ttl=ttl) is None
        self.model.set(self.key(suffix), as_bytes(value), ttl, now)

    @rule(suffix=keys | key_suffixes, value=values, ttl=ttls)
    def set_if_not_exists(self, suffix, value, ttl):
        now = time.monotonic()
        got = self.kv.set_if_not_exists(self.key(suffix), value, ttl=ttl)
        assert got is self.model.set_if_not_exists(self.key(suffix), as_bytes(value), ttl, now)

    @rule(suffix=keys | key_suffixes)
    def delete(self, suffix):
        key = self.key(suffix)
        if self.model.delete(key):
            assert self.kv.delete(key) is None
        else:
            self.expect_not_found(key, lambda: self.kv.delete(key))

    @rule(suffix=keys | key_suffixes, data=st.data())
    def delete_if_value_matches(self, suffix, data):
        key = self.key(suffix)
        value = data.draw(self.comparand(key), label="value")
        assert self.kv.delete_if_value_matches(key, value) is self.model.delete_if_value_matches(key, as_bytes(value))

    @rule(suffix=keys | key_suffixes, ttl=ttls, conditional=st.booleans(), data=st.data())
    def expire(self, suffix, ttl, conditional, data):
        key = self.key(suffix)
        if_value = data.draw(self.comparand(key), label="if_value") if conditional else None
        now = time.monotonic()
        got = self.kv.expire(key, ttl, if_value=if_value)
        assert got is self.model.expire(key, ttl, None if if_value is None else as_bytes(if_value), now)

    def comparand(self, key: str) -> st.SearchStrategy:
        """A value to compare with `key`'s: often the stored one (as bytes or
        str), sometimes one byte off, sometimes anything."""
        stored = self.model.get(key)
        if stored is None:
            return values
        near = [st.just(stored + b"\x00")] + ([st.just(stored[:-1])] if stored else [])
        return st.one_of(st.just(stored), st.just(bytearray(stored)), *self._as_text(stored), *near, values)

    @staticmethod
    def _as_text(stored: bytes) -> list[st.SearchStrategy]:
        try:
            return [st.just(stored.decode("utf-8"))]
        except UnicodeDecodeError:
            return []

    # -- reads ----------------------------------------------------------------------

    @rule(suffix=keys | key_suffixes)
    def get(self, suffix):
        key = self.key(suffix)
        expected = self.model.get(key)
        if expected is None:
            self.expect_not_found(key, lambda: self.kv.get(key))
        else:
            got = self.kv.get(key)
            assert type(got) is bytes
            assert got == expected

    @rule(suffix=keys | key_suffixes)
    def exists(self, suffix):
        assert self.kv.exists(self.key(suffix)) is self.model.exists(self.key(suffix))

    @rule(suffix=keys | key_suffixes)
    def get_ttl(self, suffix):
        key = self.key(suffix)
        if not self.model.exists(key):
            self.expect_not_found(key, lambda: self.kv.get_ttl(key))
            return
        bounds = self.model.ttl_bounds(key)
        got = self.kv.get_ttl(key)
        if bounds is None:
            assert got is None
        else:
            assert isinstance(got, int) and bounds[0] <= got <= bounds[1], (got, bounds)

    def draw_prefix_or_after(self, data: st.DataObject, label: str) -> str:
        """Somewhere interesting in this namespace: a key, a cut of a key, or odd text."""
        existing = self.draw_existing(data)
        options = [st.just(""), odd_text, st.text(utf8_chars, max_size=3), st.just("\U0010ffff" * 2)]
        if existing is not None:
            suffix = existing[NS_BYTES:]
            options += [st.just(suffix), st.integers(0, len(suffix)).map(lambda i: suffix[:i])]
            options += [odd_text.map(lambda t: suffix + t)]
        return self.ns + data.draw(st.one_of(options), label=label)

    @rule(data=st.data(), limit=limits)
    def list_keys(self, data, limit):
        prefix = self.draw_prefix_or_after(data, "prefix")
        after = data.draw(
            st.one_of(st.none(), st.just(""), st.builds(lambda: self.draw_prefix_or_after(data, "after"))),
            label="after",
        )
        if self.rejects_long_prefix_or_after(prefix, after):
            return
        page = self.kv.list_keys(prefix, limit=limit, after=after)
        assert (page.keys, page.next_after) == self.model.list_keys(prefix, limit, after)

    def rejects_long_prefix_or_after(self, prefix: str, after: str | None) -> bool:
        """A prefix or after over the key limit must be refused; True if it was."""
        too_long = [
            f for f, text in (("prefix", prefix), ("after", after)) if len((text or "").encode()) > MAX_KEY_BYTES
        ]
        if not too_long:
            return False
        with pytest.raises(KVInvalidArgumentError) as info:
            self.kv.list_keys(prefix, after=after)
        assert (info.value.reason, info.value.field) == ("KEY_TOO_LONG", too_long[0])
        return True

    @rule(data=st.data(), limit=st.integers(1, 3))
    def page_through(self, data, limit):
        prefix = self.draw_prefix_or_after(data, "prefix")
        if self.rejects_long_prefix_or_after(prefix, None):
            return
        seen: list[str] = []
        after = None
        while True:
            page = self.kv.list_keys(prefix, limit=limit, after=after)
            assert (page.keys, page.next_after) == self.model.list_keys(prefix, limit, after)
            seen.extend(page.keys)
            if page.next_after is None:
                break
            after = page.next_after
        assert seen == sorted(k for k in self.model.rows if k.startswith(prefix))

    # -- rejected requests change nothing -------------------------------------------

    @rule(suffix=too_long_suffixes, op=st.integers(0, 8), value=values)
    def too_long_key_is_rejected(self, suffix, op, value):
        key = self.key(suffix)
        assert len(key.encode()) > MAX_KEY_BYTES
        calls = [
            lambda: self.kv.get(key),
            lambda: self.kv.set(key, value),
            lambda: self.kv.set(key, value, ttl=5000),
            lambda: self.kv.set_if_not_exists(key, value),
            lambda: self.kv.delete(key),
            lambda: self.kv.delete_if_value_matches(key, value),
            lambda: self.kv.exists(key),
            lambda: self.kv.get_ttl(key),
            lambda: self.kv.expire(key, None, if_value=value),
        ]
        with pytest.raises(KVInvalidArgumentError) as info:
            calls[op]()
        assert (info.value.reason, info.value.field) == ("KEY_TOO_LONG", "key")

    @rule(suffix=too_long_suffixes, as_after=st.booleans())
    def too_long_prefix_is_rejected(self, suffix, as_after):
        text = self.key(suffix)
        with pytest.raises(KVInvalidArgumentError) as info:
            if as_after:
                self.kv.list_keys(self.ns, after=text)
            else:
                self.kv.list_keys(text)
        assert (info.value.reason, info.value.field) == ("KEY_TOO_LONG", "after" if as_after else "prefix")

    # -- after every step ---------------------------------------------------------------

    @invariant()
    def namespace_holds_exactly_the_model_keys(self):
        page = self.kv.list_keys(self.ns, limit=1000)
        assert page.next_after is None
        assert list(page.keys) == sorted(self.model.rows)


@pytest.mark.parametrize(("server_fixture", "fixed_seed"), [("memory_server", 1), ("sqlite_server", 2)])
def test_random_operations_match_the_model(request, server_fixture, fixed_seed):
    server = request.getfixturevalue(server_fixture)
    with KeyValueClient(server.target, timeout=10) as kv:
        # A fixed seed per store (no example database): every run, here or in
        # CI, tries the same sequences; the two stores get different ones.
        factory = seed(fixed_seed)(lambda: KVMachine(kv))
        run_state_machine_as_test(factory, settings=SETTINGS)


# -- fixed examples at the edges ----------------------------------------------------------


@pytest.fixture(params=["memory_server", "sqlite_server"])
def kv(request):
    with KeyValueClient(request.getfixturevalue(request.param).target, timeout=10) as client:
        yield client


@pytest.mark.parametrize("filler", FILLERS)
def test_key_of_exactly_the_byte_limit_works_and_one_more_byte_is_rejected(kv, filler):
    ns = f"p{uuid.uuid4().hex[:14]}/"
    key = ns + sized_suffix("", filler, MAX_KEY_BYTES)
    assert len(key.encode()) == MAX_KEY_BYTES
    kv.set(key, b"v", ttl=5000)
    assert kv.get(key) == b"v"
    assert kv.list_keys(ns).keys == (key,)
    assert kv.list_keys(key).keys == (key,)
    assert kv.list_keys(ns, after=key).keys == ()
    assert 4000 <= kv.get_ttl(key) <= 5000
    over = key + "x"
    for call in (lambda: kv.set(over, b"w"), lambda: kv.get(over), lambda: kv.list_keys(over)):
        with pytest.raises(KVInvalidArgumentError) as info:
            call()
        assert info.value.reason == "KEY_TOO_LONG"
    kv.delete(key)
    assert kv.list_keys(ns).keys == ()


@pytest.mark.parametrize("key", ["😀" * 1024, "\x00" * 4096, "k" * 4096], ids=["emoji", "nul", "ascii"])
def test_not_found_for_a_long_key_is_not_found(kv, key):
    """Found by the state machine: the key was repeated in the trailers until
    they passed gRPC's metadata limit (RESOURCE_EXHAUSTED, not NOT_FOUND)."""
    for call in (kv.get, kv.delete, kv.get_ttl):
        with pytest.raises(KVNotFoundError) as info:
            call(key)
        assert info.value.key == key


def test_lone_surrogates_are_rejected_before_anything_is_sent():
    # Nothing listens on port 1: a request that reached the wire would fail
    # with KVUnavailableError, not KVInvalidArgumentError.
    with KeyValueClient("127.0.0.1:1", timeout=2) as kv:
        calls = [
            lambda: kv.set("a\ud800", b"v"),
            lambda: kv.get("\udfff"),
            lambda: kv.set("k", "v\udc80"),
            lambda: kv.delete_if_value_matches("k", "\ud800"),
            lambda: kv.expire("k", None, if_value="\ud800"),
            lambda: kv.list_keys("\ud800"),
            lambda: kv.list_keys("", after="\ud800"),
        ]
        for call in calls:
            with pytest.raises(KVInvalidArgumentError):
                call()
