"""The one contract suite: every `IKeyValueAdapter` must pass it unchanged.

Subclass `KVContract` and provide a `kv` fixture. Tests build their keys with
`k(name)`, which prefixes a namespace unique to the test, so backends shared
between tests (a server process) need no clearing.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from kvgrpc.ports import (
    IKeyValueAdapter,
    KVError,
    KVInvalidArgumentError,
    KVKeyPage,
    KVLockTimeoutError,
    KVNotFoundError,
)
from kvgrpc.validation import MAX_TTL_SECONDS

BAD_TTLS = [0, -1, 1.5, "10", True, MAX_TTL_SECONDS + 1, float("nan")]
BAD_VALUES = [42, None, 3.5, ["a"], {"a": 1}, object()]
BAD_LIMITS = [0, -1, 1001, True, 2.0, "10"]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, interval: float = 0.05) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


def all_keys(kv: IKeyValueAdapter, prefix: str, limit: int = 1000) -> list[str]:
    keys: list[str] = []
    after = None
    while True:
        page = kv.list_keys(prefix, limit=limit, after=after)
        keys.extend(page.keys)
        if page.next_after is None:
            return keys
        assert page.keys and page.next_after == page.keys[-1]
        after = page.next_after


def race_set_if_not_exists(adapters: list[IKeyValueAdapter], key: str, threads: int = 16) -> list[bool]:
    """Start `threads` threads at once, each calling set_if_not_exists on
    `key` through the adapters in turn; return what each was told."""
    barrier = threading.Barrier(threads)
    results: list[bool] = []
    errors: list[BaseException] = []

    def contend(i: int) -> None:
        try:
            barrier.wait()
            results.append(adapters[i % len(adapters)].set_if_not_exists(key, f"owner-{i}"))
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)

    workers = [threading.Thread(target=contend, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return results


def assert_mutually_exclusive(lock: Callable[[], AbstractContextManager[object]], threads: int, rounds: int) -> None:
    """`threads` threads each take `lock()` `rounds` times; a counter checked
    inside the critical section proves no two were ever inside at once."""
    inside, overlaps, entries = [0], [0], [0]
    guard = threading.Lock()

    def worker() -> None:
        for _ in range(rounds):
            with lock():
                with guard:
                    inside[0] += 1
                    overlaps[0] += inside[0] > 1
                    entries[0] += 1
                time.sleep(0.002)
                with guard:
                    inside[0] -= 1

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert (entries[0], overlaps[0]) == (threads * rounds, 0)


class KVContract:
    @pytest.fixture
    def kv(self) -> Iterator[IKeyValueAdapter]:
        raise NotImplementedError("subclasses provide the adapter under test")

    @pytest.fixture
    def ns(self) -> str:
        return f"{uuid.uuid4().hex[:12]}/"

    @pytest.fixture
    def k(self, ns: str) -> Callable[[str], str]:
        return lambda name: ns + name

    # -- get / set ---------------------------------------------------------------

    def test_get_missing_raises_not_found(self, kv, k):
        with pytest.raises(KVNotFoundError) as info:
            kv.get(k("missing"))
        assert isinstance(info.value, KVError)
        assert info.value.key == k("missing")

    def test_set_then_get_round_trips_bytes(self, kv, k):
        value = bytes(range(256)) * 4
        kv.set(k("a"), value)
        assert kv.get(k("a")) == value

    def test_empty_value_is_a_value(self, kv, k):
        kv.set(k("empty"), b"")
        assert kv.get(k("empty")) == b""
        assert kv.exists(k("empty"))

    def test_set_overwrites_value(self, kv, k):
        kv.set(k("a"), b"one")
        kv.set(k("a"), b"two")
        assert kv.get(k("a")) == b"two"

    @pytest.mark.parametrize(
        ("value", "stored"),
        [("héllo ☃", "héllo ☃".encode()), (bytearray(b"ba"), b"ba"), (memoryview(b"mv"), b"mv"), (b"raw", b"raw")],
    )
    def test_values_are_normalised_to_bytes(self, kv, k, value, stored):
        kv.set(k("v"), value)
        assert kv.get(k("v")) == stored
        assert isinstance(kv.get(k("v")), bytes)

    @pytest.mark.parametrize("value", BAD_VALUES, ids=lambda v: type(v).__name__)
    def test_non_bytes_values_are_type_errors_and_change_nothing(self, kv, k, value):
        kv.set(k("v"), b"before")
        for write in (
            lambda: kv.set(k("v"), value),
            lambda: kv.set_if_not_exists(k("new"), value),
            lambda: kv.delete_if_value_matches(k("v"), value),
        ):
            with pytest.raises(TypeError):
                write()
        assert kv.get(k("v")) == b"before"
        assert not kv.exists(k("new"))

    def test_lone_surrogate_str_value_is_rejected(self, kv, k):
        with pytest.raises(ValueError):
            kv.set(k("v"), "\ud800")
        assert not kv.exists(k("v"))

    # -- keys ---------------------------------------------------------------------

    @pytest.mark.parametrize("key", ["ключ", "键", "emoji-😀", "tab\tnew\nline", "nul\x00byte", "glob*?[]%_", " "])
    def test_unusual_keys_round_trip(self, kv, k, key):
        kv.set(k(key), key.encode())
        assert kv.get(k(key)) == key.encode()
        assert kv.list_keys(k(key)).keys == (k(key),)
        kv.delete(k(key))
        assert not kv.exists(k(key))

    def test_empty_key_is_a_value_error_everywhere(self, kv):
        calls = [
            lambda: kv.get(""),
            lambda: kv.set("", b"v"),
            lambda: kv.set_if_not_exists("", b"v"),
            lambda: kv.delete(""),
            lambda: kv.delete_if_value_matches("", b"v"),
            lambda: kv.exists(""),
            lambda: kv.get_ttl(""),
            lambda: kv.expire("", 10),
        ]
        for call in calls:
            with pytest.raises(KVInvalidArgumentError) as info:
                call()
            assert isinstance(info.value, ValueError)
            assert "key" in str(info.value)

    @pytest.mark.parametrize("key", [None, 1, b"bytes-key"], ids=repr)
    def test_non_str_key_is_a_type_error(self, kv, key):
        with pytest.raises(TypeError):
            kv.set(key, b"v")
        with pytest.raises(TypeError):
            kv.get(key)

    def test_lone_surrogate_key_is_a_value_error(self, kv, k):
        with pytest.raises(ValueError):
            kv.set(k("\udc80"), b"v")

    # -- TTLs ----------------------------------------------------------------------

    @pytest.mark.parametrize("ttl", BAD_TTLS, ids=repr)
    def test_bad_ttl_is_a_value_error_and_changes_nothing(self, kv, k, ttl):
        kv.set(k("kept"), b"v")
        for write in (
            lambda: kv.set(k("new"), b"v", ttl=ttl),
            lambda: kv.set(k("kept"), b"changed", ttl=ttl),
            lambda: kv.set_if_not_exists(k("new"), b"v", ttl=ttl),
            lambda: kv.expire(k("kept"), ttl),
        ):
            with pytest.raises(ValueError):
                write()
        assert not kv.exists(k("new"))
        assert kv.get(k("kept")) == b"v"
        assert kv.get_ttl(k("kept")) is None

    def test_get_ttl_rounds_up_whole_seconds(self, kv, k):
        kv.set(k("a"), b"v", ttl=100)
        assert kv.get_ttl(k("a")) == 100
        kv.set(k("max"), b"v", ttl=MAX_TTL_SECONDS)
        assert kv.get_ttl(k("max")) == MAX_TTL_SECONDS

    def test_get_ttl_is_none_without_expiry(self, kv, k):
        kv.set(k("a"), b"v")
        assert kv.get_ttl(k("a")) is None

    def test_get_ttl_of_missing_key_raises_not_found(self, kv, k):
        with pytest.raises(KVNotFoundError):
            kv.get_ttl(k("missing"))

    def test_set_without_ttl_clears_previous_ttl(self, kv, k):
        kv.set(k("a"), b"v", ttl=100)
        kv.set(k("a"), b"w")
        assert kv.get_ttl(k("a")) is None

    def test_expired_key_is_absent_to_every_method(self, kv, k, ns):
        kv.set(k("short"), b"v", ttl=1)
        kv.set(k("other"), b"v", ttl=1)
        kv.set(k("stays"), b"v")
        assert kv.get(k("short")) == b"v"
        # Poll with list_keys only, so no per-key call can have purged the rows first.
        wait_until(lambda: kv.list_keys(ns).keys == (k("stays"),))
        for key in (k("short"), k("other")):
            with pytest.raises(KVNotFoundError):
                kv.get(key)
        assert not kv.exists(k("short"))
        with pytest.raises(KVNotFoundError):
            kv.get_ttl(k("short"))
        with pytest.raises(KVNotFoundError):
            kv.delete(k("short"))
        assert kv.delete_if_value_matches(k("other"), b"v") is False
        assert kv.expire(k("other"), 100) is False
        assert kv.set_if_not_exists(k("short"), b"new") is True
        assert kv.get(k("short")) == b"new"
        assert kv.get_ttl(k("short")) is None

    # -- set_if_not_exists -----------------------------------------------------------

    def test_set_if_not_exists_inserts_once(self, kv, k):
        assert kv.set_if_not_exists(k("a"), b"first") is True
        assert kv.set_if_not_exists(k("a"), b"second") is False
        assert kv.get(k("a")) == b"first"

    def test_set_if_not_exists_with_ttl(self, kv, k):
        assert kv.set_if_not_exists(k("a"), b"v", ttl=50) is True
        assert kv.get_ttl(k("a")) == 50
        assert kv.set_if_not_exists(k("a"), b"w", ttl=10) is False
        assert kv.get_ttl(k("a")) == 50

    def test_set_if_not_exists_after_delete(self, kv, k):
        kv.set(k("a"), b"v")
        kv.delete(k("a"))
        assert kv.set_if_not_exists(k("a"), b"w") is True

    def test_set_if_not_exists_is_atomic_under_16_threads(self, kv, k):
        for round_ in range(3):
            results = race_set_if_not_exists([kv], k(f"race-{round_}"))
            assert sorted(results) == [False] * 15 + [True]
            assert kv.get(k(f"race-{round_}")).startswith(b"owner-")

    # -- delete / delete_if_value_matches -----------------------------------------------

    def test_delete_removes_then_raises_not_found(self, kv, k):
        kv.set(k("a"), b"v")
        assert kv.delete(k("a")) is None
        assert not kv.exists(k("a"))
        with pytest.raises(KVNotFoundError):
            kv.delete(k("a"))

    def test_delete_if_value_matches(self, kv, k):
        kv.set(k("a"), b"mine")
        assert kv.delete_if_value_matches(k("a"), b"theirs") is False
        assert kv.get(k("a")) == b"mine"
        assert kv.delete_if_value_matches(k("a"), "mine") is True
        assert not kv.exists(k("a"))
        assert kv.delete_if_value_matches(k("a"), b"mine") is False

    def test_delete_if_value_matches_compares_whole_value(self, kv, k):
        kv.set(k("a"), b"token-1")
        assert kv.delete_if_value_matches(k("a"), b"token-") is False
        assert kv.delete_if_value_matches(k("a"), b"token-12") is False
        assert kv.delete_if_value_matches(k("a"), b"") is False
        assert kv.exists(k("a"))

    def test_exists(self, kv, k):
        assert kv.exists(k("a")) is False
        kv.set(k("a"), b"")
        assert kv.exists(k("a")) is True

    # -- list_keys ---------------------------------------------------------------------

    def test_list_keys_orders_by_code_point(self, kv, k, ns):
        names = ["b", "a", "B", "ab", "é", "😀", "z", "\uffff", "a\x00", "aa"]
        for name in names:
            kv.set(k(name), b"")
        page = kv.list_keys(ns)
        assert isinstance(page, KVKeyPage)
        assert page.keys == tuple(sorted(k(n) for n in names))
        assert page.next_after is None

    def test_list_keys_prefix_is_literal(self, kv, k, ns):
        for name in ["a*b", "axb", "a?c", "abc", "a[b]", "ab", "a%", "a_", "a\\", "b"]:
            kv.set(k(name), b"")
        assert kv.list_keys(k("a*")).keys == (k("a*b"),)
        assert kv.list_keys(k("a?")).keys == (k("a?c"),)
        assert kv.list_keys(k("a[")).keys == (k("a[b]"),)
        assert kv.list_keys(k("a%")).keys == (k("a%"),)
        assert kv.list_keys(k("a_")).keys == (k("a_"),)
        assert kv.list_keys(k("a\\")).keys == (k("a\\"),)
        assert len(kv.list_keys(k("a")).keys) == 9
        assert kv.list_keys(k("nothing")).keys == ()

    def test_list_keys_pages_through_everything(self, kv, k, ns):
        names = [f"key-{i:03d}" for i in range(23)]
        for name in reversed(names):
            kv.set(k(name), b"")
        first = kv.list_keys(ns, limit=10)
        assert first.keys == tuple(k(n) for n in names[:10])
        assert first.next_after == k(names[9])
        assert all_keys(kv, ns, limit=5) == [k(n) for n in names]
        assert all_keys(kv, ns, limit=1) == [k(n) for n in names]

    def test_list_keys_exact_last_page_has_no_next(self, kv, k, ns):
        for i in range(4):
            kv.set(k(f"{i}"), b"")
        assert kv.list_keys(ns, limit=4).next_after is None
        assert kv.list_keys(ns, limit=2, after=k("1")).next_after is None
        assert kv.list_keys(ns, limit=3).next_after == k("2")

    def test_list_keys_after_is_exclusive(self, kv, k, ns):
        for name in "abcd":
            kv.set(k(name), b"")
        assert kv.list_keys(ns, after=k("b")).keys == (k("c"), k("d"))
        assert kv.list_keys(ns, after=k("bb")).keys == (k("c"), k("d"))
        assert kv.list_keys(ns, after=k("d")).keys == ()
        assert kv.list_keys(ns, after="").keys == tuple(k(n) for n in "abcd")
        assert kv.list_keys(ns, after=ns[:-1]).keys == tuple(k(n) for n in "abcd")

    def test_list_keys_default_limit_is_100(self, kv, k, ns):
        for i in range(101):
            kv.set(k(f"{i:03d}"), b"")
        page = kv.list_keys(ns)
        assert len(page.keys) == 100
        assert page.next_after == k("099")

    @pytest.mark.parametrize("limit", BAD_LIMITS, ids=repr)
    def test_list_keys_bad_limit_is_a_value_error(self, kv, ns, limit):
        with pytest.raises(ValueError):
            kv.list_keys(ns, limit=limit)

    def test_list_keys_limit_bounds_are_valid(self, kv, k, ns):
        kv.set(k("a"), b"")
        assert kv.list_keys(ns, limit=1).keys == (k("a"),)
        assert kv.list_keys(ns, limit=1000).keys == (k("a"),)

    # -- expire ---------------------------------------------------------------------------

    def test_expire_sets_and_removes_ttl(self, kv, k):
        kv.set(k("a"), b"v")
        assert kv.expire(k("a"), 60) is True
        assert kv.get_ttl(k("a")) == 60
        assert kv.expire(k("a"), None) is True
        assert kv.get_ttl(k("a")) is None
        assert kv.get(k("a")) == b"v"

    def test_expire_missing_key_is_false(self, kv, k):
        assert kv.expire(k("missing"), 10) is False
        assert kv.expire(k("missing"), None) is False
        assert not kv.exists(k("missing"))

    def test_expire_if_value(self, kv, k):
        kv.set(k("lock"), b"mine", ttl=30)
        assert kv.expire(k("lock"), 90, if_value=b"theirs") is False
        assert kv.get_ttl(k("lock")) == 30
        assert kv.expire(k("lock"), 90, if_value="mine") is True
        assert kv.get_ttl(k("lock")) == 90
        assert kv.expire(k("lock"), None, if_value=b"mine") is True
        assert kv.get_ttl(k("lock")) is None

    def test_expire_if_value_type_error(self, kv, k):
        kv.set(k("a"), b"v")
        with pytest.raises(TypeError):
            kv.expire(k("a"), 10, if_value=7)
        assert kv.get_ttl(k("a")) is None

    def test_expire_renewal_keeps_key_alive(self, kv, k):
        kv.set(k("lease"), b"me", ttl=1)
        assert kv.expire(k("lease"), 30, if_value=b"me") is True
        time.sleep(1.2)
        assert kv.get(k("lease")) == b"me"

    # -- lock -------------------------------------------------------------------------------

    def test_lock_acquires_and_releases(self, kv, k):
        with kv.lock(k("L"), ttl=10) as held:
            assert kv.get(k("L")) == held.token
            assert held.key == k("L")
            assert 0 < kv.get_ttl(k("L")) <= 10
        assert not kv.exists(k("L"))

    def test_lock_times_out_while_held(self, kv, k):
        with kv.lock(k("L")):
            started = time.monotonic()
            with pytest.raises(KVLockTimeoutError) as info, kv.lock(k("L"), timeout=0.3, retry_delay=0.02):
                pytest.fail("acquired a held lock")
            assert time.monotonic() - started >= 0.3
            assert info.value.attempts >= 2
            assert info.value.key == k("L")
            assert info.value.timeout == 0.3
        assert not kv.exists(k("L"))

    def test_lock_released_on_exception(self, kv, k):
        with pytest.raises(RuntimeError), kv.lock(k("L")):
            raise RuntimeError("boom")
        assert not kv.exists(k("L"))

    def test_lock_waits_for_release(self, kv, k):
        acquired = threading.Event()
        release = threading.Event()

        def holder() -> None:
            with kv.lock(k("L")):
                acquired.set()
                release.wait(5)

        t = threading.Thread(target=holder)
        t.start()
        assert acquired.wait(5)
        threading.Timer(0.2, release.set).start()
        with kv.lock(k("L"), timeout=5, retry_delay=0.02):
            assert release.is_set()
        t.join()

    def test_lock_expired_holder_does_not_release_new_holder(self, kv, k):
        with kv.lock(k("L"), ttl=1) as first:
            wait_until(lambda: not kv.exists(k("L")))
            assert kv.set_if_not_exists(k("L"), b"someone-else") is True
        assert kv.get(k("L")) == b"someone-else"
        assert first.token != b"someone-else"

    def test_lock_mutual_exclusion(self, kv, k):
        assert_mutually_exclusive(lambda: kv.lock(k("L"), timeout=20, retry_delay=0.005), threads=6, rounds=5)

    @pytest.mark.parametrize(
        "kwargs",
        [{"ttl": 0}, {"ttl": 1.5}, {"timeout": 0}, {"timeout": -1}, {"retry_delay": 0}, {"timeout": float("inf")}],
        ids=repr,
    )
    def test_lock_arguments_are_validated(self, kv, k, kwargs):
        with pytest.raises(ValueError), kv.lock(k("L"), **kwargs):
            pytest.fail("lock acquired with invalid arguments")
        assert not kv.exists(k("L"))

    def test_lock_fencing_tokens_strictly_increase(self, kv, k):
        tokens = []
        for _ in range(4):
            with kv.lock(k("L")) as held:
                tokens.append(held.fencing_token)
        assert tokens == sorted(set(tokens)) and tokens[0] >= 1

    def test_lock_renew(self, kv, k):
        with kv.lock(k("L"), ttl=5) as held:
            assert held.renew(60) is True
            assert kv.get_ttl(k("L")) == 60
            assert held.renew() is True
            assert kv.get_ttl(k("L")) == 5
            kv.delete(k("L"))  # lost it (expired and taken, say)
            kv.set(k("L"), b"someone-else")
            assert held.renew() is False
            assert kv.get_ttl(k("L")) is None
        assert kv.get(k("L")) == b"someone-else"

    # -- request ids and fencing ------------------------------------------------------------

    def test_repeated_request_id_returns_the_first_outcome(self, kv, k):
        assert kv.set_if_not_exists(k("a"), b"first", request_id="sine-1") is True
        assert kv.set_if_not_exists(k("a"), b"first", request_id="sine-1") is True  # a retry: same answer
        assert kv.set_if_not_exists(k("a"), b"other", request_id="sine-2") is False
        assert kv.get(k("a")) == b"first"
        assert kv.delete_if_value_matches(k("a"), b"first", request_id="dvm-1") is True
        assert kv.delete_if_value_matches(k("a"), b"first", request_id="dvm-1") is True
        assert not kv.exists(k("a"))
        kv.set(k("b"), b"v")
        kv.delete(k("b"), request_id="del-1")
        kv.delete(k("b"), request_id="del-1")  # no KVNotFoundError: the first call found it
        with pytest.raises(KVNotFoundError):
            kv.delete(k("b"), request_id="del-2")
        kv.set(k("c"), b"mine")
        assert kv.expire(k("c"), 100, if_value=b"mine", request_id="exp-1") is True
        kv.set(k("c"), b"theirs")
        assert kv.expire(k("c"), 100, if_value=b"mine", request_id="exp-1") is True
        assert kv.expire(k("c"), 100, if_value=b"mine", request_id="exp-2") is False

    def test_request_ids_are_unique_per_store_not_per_key(self, kv, k, ns):
        request_id = f"{ns}shared"
        assert kv.set_if_not_exists(k("a"), b"v", request_id=request_id) is True
        with pytest.raises(KVInvalidArgumentError) as info:
            kv.set_if_not_exists(k("b"), b"v", request_id=request_id)
        assert info.value.reason == "REQUEST_ID_REUSED"
        assert not kv.exists(k("b"))

    @pytest.mark.parametrize("request_id", ["", "x" * 129, "line\nbreak", 5, b"bytes"], ids=repr)
    def test_bad_request_id_is_a_value_error(self, kv, k, request_id):
        with pytest.raises(ValueError):
            kv.set_if_not_exists(k("a"), b"v", request_id=request_id)
        assert not kv.exists(k("a"))

    def test_fenced_insert_counts_acquisitions(self, kv, k):
        assert kv.set_if_not_exists_fenced(k("f"), b"a", ttl=30) == 1
        assert kv.set_if_not_exists_fenced(k("f"), b"b") is None
        assert kv.get(k("f")) == b"a"
        kv.delete(k("f"))
        assert kv.set_if_not_exists_fenced(k("f"), b"c", request_id="fence-3") == 2
        assert kv.set_if_not_exists_fenced(k("f"), b"c", request_id="fence-3") == 2  # retry: same token
        kv.delete(k("f"))
        assert kv.set_if_not_exists_fenced(k("f"), b"d") == 3
        assert kv.set_if_not_exists_fenced(k("other"), b"x") == 1

    # -- concurrency ------------------------------------------------------------------------

    def test_concurrent_writers_lose_nothing(self, kv, k, ns):
        def writer(t: int) -> None:
            for i in range(25):
                kv.set(k(f"{t}-{i:02d}"), f"{t}-{i}")

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        keys = all_keys(kv, ns)
        assert len(keys) == 200
        assert kv.get(k("7-24")) == b"7-24"
