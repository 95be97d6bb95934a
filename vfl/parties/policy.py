"""The host's policy, enforced by its own service before any role runs (never by the guest).

A job request is allowed when one `allow` rule matches the requesting peer (the identity from
its TLS certificate), the protocol and every dataset of this party the job would use; when the
party does not exceed its concurrency limit; and, if the job or the transport is insecure,
when `allow_insecure` is set. The minimum intersection size can only be checked once PSI has
run: protocols call `check_intersection` with the size they found.

Every refusal is a PolicyError whose message names the rule that refused, so the guest's data
scientist sees exactly what to ask the partner for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vfl.errors import PolicyError
from vfl.parties.config import PartyConfig, PolicyConfig, PolicyRule

GUEST = "guest"


def check_start(
    config: PartyConfig,
    requester: str,
    protocol: str,
    roles: Mapping[str, str],
    datasets: Mapping[str, list[str]],
    params: Any,
    running_jobs: int,
) -> None:
    """Raise PolicyError unless `requester` may start `protocol` with this party in `roles`."""
    me, policy = config.name, config.policy
    if me not in roles:
        raise PolicyError(f"'{me}' is not a party of the requested job (parties: {sorted(roles)})")
    own = list(datasets.get(me, []))
    if requester == me:
        pass  # the party's own operator: allow rules are about peers
    elif roles.get(me) == GUEST:
        raise PolicyError(f"only '{me}' itself may start a job in which '{me}' is the guest")
    elif roles.get(requester) != GUEST:
        raise PolicyError(f"'{requester}' asked for a job in which it is not the guest")
    else:
        _check_rules(policy, me, requester, protocol, own)
    for name in own:
        if name not in config.datasets:
            offered = f" (it offers {sorted(config.datasets)})" if requester == me else ""
            raise PolicyError(f"'{me}' offers no dataset named '{name}'{offered}")
    if config.insecure and not policy.allow_insecure:
        raise PolicyError(f"'{me}' runs plaintext transport but its policy has allow_insecure: false")
    if wants_insecure(params) and not policy.allow_insecure:
        raise PolicyError(
            f"'{me}' does not allow insecure modes (policy.allow_insecure is false) but the job "
            "asks for one (insecure: true in its parameters)"
        )
    if running_jobs >= policy.max_concurrent_jobs:
        raise PolicyError(
            f"'{me}' is already running {running_jobs} jobs "
            f"(policy.max_concurrent_jobs = {policy.max_concurrent_jobs}); try again later"
        )


def _check_rules(policy: PolicyConfig, me: str, peer: str, protocol: str, datasets: list[str]) -> None:
    if not allows(policy, peer, protocol, datasets):
        what = f"protocol '{protocol}' on datasets {datasets or '[]'}"
        raise PolicyError(f"policy of '{me}' does not allow peer '{peer}' to start {what}")


def allows(policy: PolicyConfig, peer: str, protocol: str, datasets: list[str]) -> bool:
    """Whether a rule of `policy` lets `peer` run `protocol` on every one of `datasets`."""
    return any(_rule_allows(rule, peer, protocol, datasets) for rule in policy.allow)


def _rule_allows(rule: PolicyRule, peer: str, protocol: str, datasets: list[str]) -> bool:
    return (
        matches(rule.peers, peer)
        and matches(rule.protocols, protocol)
        and all(matches(rule.datasets, d) for d in datasets)
    )


def matches(patterns: list[str], value: str) -> bool:
    """Whether `value` is one of `patterns` (``"*"`` matches anything)."""
    return "*" in patterns or value in patterns


def wants_insecure(params: Any) -> bool:
    """True if the parameters ask for an insecure mode (``insecure: true`` at any depth)."""
    if isinstance(params, Mapping):
        return params.get("insecure") is True or any(wants_insecure(v) for v in params.values())
    if isinstance(params, list):
        return any(wants_insecure(v) for v in params)
    return False


def check_intersection(policy: PolicyConfig, size: int, party: str, peer: str) -> None:
    """Stop a job whose intersection is too small to hide individuals (policy.min_intersection)."""
    if size < policy.min_intersection:
        raise PolicyError(
            f"policy of '{party}': intersection with '{peer}' has {size} rows, fewer than "
            f"min_intersection = {policy.min_intersection}"
        )
