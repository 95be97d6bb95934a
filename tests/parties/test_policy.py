"""The host's policy: who may start what on which data, insecure modes, concurrency."""

from __future__ import annotations

import pytest

from vfl.errors import PolicyError
from vfl.parties.config import PartyConfig
from vfl.parties.policy import check_intersection, check_start, wants_insecure

ROLES = {"bank": "guest", "partner": "host"}


def partner(**policy) -> PartyConfig:
    return PartyConfig.model_validate({
        "name": "partner",
        "insecure": True,
        "peers": {"bank": {"address": "127.0.0.1:1"}, "other": {"address": "127.0.0.1:2"}},
        "datasets": {
            "features": {"uri": "features.csv", "id_column": "id"},
            "secret": {"uri": "secret.csv", "id_column": "id"},
        },
        "policy": {"allow_insecure": True, **policy},
    })


def start(config, requester="bank", protocol="job", roles=ROLES, datasets=None, params=None, running=0):
    check_start(config, requester, protocol, roles, datasets or {"partner": ["features"]},
                params or {}, running)


def test_default_policy_allows_nothing():
    with pytest.raises(PolicyError, match="does not allow peer 'bank' to start protocol 'job'"):
        start(partner())


def test_rule_matches_peer_protocol_and_every_dataset():
    config = partner(allow=[{"peers": ["bank"], "protocols": ["job"], "datasets": ["features"]}])
    start(config)
    with pytest.raises(PolicyError, match="protocol 'train'"):
        start(config, protocol="train")
    with pytest.raises(PolicyError, match=r"datasets \['features', 'secret'\]"):
        start(config, datasets={"partner": ["features", "secret"]})
    with pytest.raises(PolicyError, match="peer 'other'"):
        start(config, requester="other", roles={"other": "guest", "partner": "host"})


def test_wildcards_and_several_rules():
    config = partner(allow=[
        {"peers": ["other"], "protocols": ["*"], "datasets": ["secret"]},
        {"peers": ["*"], "protocols": ["ping"], "datasets": ["*"]},
    ])
    start(config, protocol="ping", datasets={"partner": ["secret"]})
    start(config, requester="other", roles={"other": "guest", "partner": "host"},
          datasets={"partner": ["secret"]})
    with pytest.raises(PolicyError):
        start(config, protocol="job", datasets={"partner": ["secret"]})


def test_a_peer_can_never_make_this_party_the_guest_or_ask_as_a_host():
    config = partner(allow=[{}])  # the default rule: everything, for every peer
    with pytest.raises(PolicyError, match="only 'partner' itself"):
        start(config, roles={"bank": "host", "partner": "guest"})
    with pytest.raises(PolicyError, match="not the guest"):
        start(config, roles={"other": "guest", "bank": "host", "partner": "host"})
    start(config, requester="partner", roles={"bank": "host", "partner": "guest"})  # its operator


def test_unknown_dataset_is_not_offered():
    config = partner(allow=[{}])
    with pytest.raises(PolicyError, match="offers no dataset named 'nope'"):
        start(config, datasets={"partner": ["nope"]})


def test_insecure_modes_need_allow_insecure():
    strict = partner(allow=[{}]).model_copy(update={"insecure": False, "tls": None})
    strict.policy.allow_insecure = False
    with pytest.raises(PolicyError, match="does not allow insecure modes"):
        start(strict, params={"train": {"params": {"insecure": True}}})
    start(strict, params={"train": {"params": {"insecure": False}}})
    plaintext = partner(allow=[{}])
    plaintext.policy.allow_insecure = False
    with pytest.raises(PolicyError, match="plaintext transport"):
        start(plaintext)


def test_concurrency_limit():
    config = partner(allow=[{}], max_concurrent_jobs=2)
    start(config, running=1)
    with pytest.raises(PolicyError, match="max_concurrent_jobs = 2"):
        start(config, running=2)


def test_wants_insecure_looks_at_any_depth():
    assert wants_insecure({"a": [{"b": {"insecure": True}}]})
    assert not wants_insecure({"insecure": "yes", "list": [1, "insecure"]})


def test_minimum_intersection():
    policy = partner(min_intersection=500).policy
    check_intersection(policy, 500, "partner", "bank")
    with pytest.raises(PolicyError, match="499 rows, fewer than min_intersection = 500"):
        check_intersection(policy, 499, "partner", "bank")
