"""The one contributions protocol: the guest asks every host for the same rows and checks each
answer before merging; a host answers only a request for its own row count."""

from __future__ import annotations

import numpy as np
import pytest

from vfl.algorithms import contributions
from vfl.algorithms.hetero_lr.model import LRGuestPart, LRHostPart
from vfl.errors import ProtocolError
from vfl.parties import simulate

ROLES = {"bank": "guest", "a": "host", "b": "host"}


def test_the_guest_merges_every_hosts_contribution_like_the_served_parts():
    rng = np.random.default_rng(0)
    Xg, Xa, Xb = rng.normal(size=(50, 2)), rng.normal(size=(50, 3)), rng.normal(size=(50, 4))
    guest = LRGuestPart(np.array([0.5, -1.0]), 0.25)
    hosts = {"a": (LRHostPart(np.array([1.0, 2.0, 3.0])), Xa), "b": (LRHostPart(np.full(4, -0.5)), Xb)}

    out = simulate({"bank": (lambda ctx: guest.predict_proba(Xg, contributions.guest_collect(ctx, 50, 1)), {}),
                    **{h: (lambda ctx, h=h: contributions.host_contribute(ctx, hosts[h][1], hosts[h][0]), {})
                       for h in hosts}}, roles=ROLES)
    served = guest.predict_proba(Xg, [part.contribution(X) for part, X in hosts.values()])
    np.testing.assert_array_equal(out["bank"], served)


@pytest.mark.parametrize(("value", "match"), [
    (np.ones((49, 1)), r"host 'a' sent a contribution of shape \(49, 1\), expected \(50, 1\)"),
    (np.ones((50, 2)), r"expected \(50, 1\)"),
    (np.full((50, 1), np.nan), "host 'a' sent NaN"),
    ("0.5", "host 'a' sent str"),
])
def test_a_bad_contribution_is_refused_naming_the_host(value, match):
    with pytest.raises(ProtocolError, match=match):
        contributions.check_contribution(value, 50, "a", width=1)


def test_a_host_refuses_a_request_for_other_rows():
    def guest(ctx):
        ctx.child("predict").broadcast(contributions.REQUEST, {"n_rows": 7})

    with pytest.raises(ProtocolError, match="asks for .*'n_rows': 7.*host has 5 rows"):
        simulate({"bank": (guest, {}),
                  "a": (lambda ctx: contributions.host_contribute(ctx, np.ones((5, 3)), LRHostPart(np.ones(3))), {})},
                 roles={"bank": "guest", "a": "host"})
