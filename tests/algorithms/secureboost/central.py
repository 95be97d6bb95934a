"""The federated trees evaluated centrally: every host's split table folded into the guest's
trees, over the joined features (guest columns first, then each host's in name order)."""

from __future__ import annotations

import numpy as np

from vfl.algorithms.secureboost.model import GUEST, SBGuestPart, SBHostPart


def central_part(guest: SBGuestPart, hosts: dict[str, SBHostPart]) -> SBGuestPart:
    """One part with no hosts: host nodes become guest nodes on the joined columns."""
    owner, feature = guest.owner.copy(), guest.feature.copy()
    threshold, missing_left = guest.threshold.copy(), guest.missing_left.copy()
    offset = guest.n_features
    for i, name in enumerate(guest.hosts):
        table = hosts[name]
        mine = guest.owner == i + 1
        columns = guest.feature[mine]
        owner[mine] = GUEST
        feature[mine] = offset + table.feature[columns]
        threshold[mine] = table.threshold[columns]
        missing_left[mine] = table.missing_left[columns]
        offset += table.n_features
    return SBGuestPart(offset, [], guest.base_score, guest.roots, owner, feature, threshold, missing_left,
                       guest.left, guest.right, guest.value)


def joined(blocks: list[np.ndarray]) -> np.ndarray:
    return np.hstack([np.asarray(b, dtype=np.float64) for b in blocks])
