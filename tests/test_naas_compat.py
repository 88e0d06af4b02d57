"""kvgrpc.compat.naas: naas-abi-core's own KeyValueService, lock included,
running through a real kvgrpc server."""

from __future__ import annotations

import pytest

from components import require_module
from contract import assert_mutually_exclusive

_HINT = "make test installs it: pip install --no-deps naas-abi-core"
naas_ports = require_module("naas_abi_core.services.keyvalue.KeyValuePorts", _HINT)
KeyValueService = require_module("naas_abi_core.services.keyvalue.KeyValueService", _HINT).KeyValueService
KVGrpcAdapter = require_module("kvgrpc.compat.naas", _HINT).KVGrpcAdapter


@pytest.fixture
def service(memory_server):
    with KVGrpcAdapter(memory_server.target, timeout=5) as adapter:
        yield KeyValueService(adapter)


def test_adapter_is_naas_own_port(memory_server):
    with KVGrpcAdapter(memory_server.target) as adapter:
        assert isinstance(adapter, naas_ports.IKeyValueAdapter)


def test_service_round_trip_and_naas_errors(service):
    service.set("naas/a", b"1", ttl=60)
    assert service.get("naas/a") == b"1"
    assert service.exists("naas/a")
    assert service.get_ttl("naas/a") == 60
    page = service.list_keys("naas/")
    assert isinstance(page, naas_ports.KVKeyPage)
    assert page.keys == ("naas/a",)
    assert service.set_if_not_exists("naas/a", b"2") is False
    assert service.delete_if_value_matches("naas/a", b"1") is True
    with pytest.raises(naas_ports.KVNotFoundError):
        service.get("naas/a")
    with pytest.raises(naas_ports.KVNotFoundError):
        service.delete("naas/a")
    with pytest.raises(naas_ports.KVNotFoundError):
        service.get_ttl("naas/a")


def test_naas_lock_is_mutually_exclusive_through_the_server(service):
    assert_mutually_exclusive(lambda: service.lock("naas/lock", ttl=10, timeout=20, retry_delay=0.005), 4, 5)
    assert not service.exists("naas/lock")


def test_naas_lock_times_out_with_naas_error(service):
    with (
        service.lock("naas/held", ttl=10),
        pytest.raises(naas_ports.KVLockTimeoutError),
        service.lock("naas/held", timeout=0.2, retry_delay=0.01),
    ):
        pytest.fail("acquired a held lock")
