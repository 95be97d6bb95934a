"""The registry's static backend and the `peers:` / `registry:` config rules (the ZooKeeper
backend runs against a real server in tests/serving/test_replicas.py)."""

from __future__ import annotations

import pytest

from vfl.errors import ConfigError, PeerError
from vfl.parties.config import PartyConfig, parse
from vfl.parties.discovery import registry_for


def _config(**fields):
    return parse(PartyConfig, {"name": "bank", "insecure": True, "listen": "127.0.0.1:7000", **fields},
                 "bank.yaml")


def test_static_registry_resolves_one_or_several_addresses():
    registry = registry_for(_config(peers={"partner": {"address": "p:1"},
                                           "agency": {"addresses": ["a1:1", "a2:1"]}}))
    assert registry.replicas("partner") == ["p:1"]
    assert registry.replicas("agency") == ["a1:1", "a2:1"] and registry.primary("agency") == "a1:1"
    assert registry.replicas("bank") == ["127.0.0.1:7000"]
    assert registry.healthy()
    with pytest.raises(PeerError, match=r"'other' is not a configured peer of 'bank' \(peers: \['agency', 'partner'\]\)"):
        registry.replicas("other")


@pytest.mark.parametrize(("fields", "message"), [
    ({"peers": {"partner": {}}}, "peers.partner: give `address` or `addresses`"),
    ({"peers": {"partner": {"address": "p:1", "addresses": ["p:2"]}}},
     "peers.partner: give `address` or `addresses`, not both"),
    ({"registry": {"backend": "zookeeper"}}, "registry: backend zookeeper needs `hosts`"),
    ({"registry": {"backend": "etcd"}}, "registry.backend: Input should be 'static' or 'zookeeper'"),
])
def test_bad_peers_or_registry_name_the_field(fields, message):
    with pytest.raises(ConfigError) as err:
        _config(**fields)
    assert message in str(err.value) and "bank.yaml" in str(err.value)


def test_zookeeper_peers_may_leave_out_addresses():
    config = _config(peers={"partner": {}}, registry={"backend": "zookeeper", "hosts": "zk:2181"})
    assert config.peers["partner"].all_addresses() == []
