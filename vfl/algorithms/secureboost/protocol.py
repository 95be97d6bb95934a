"""SecureBoost, one tree: the guest's and the hosts' steps side by side (Cheng et al.,
"SecureBoost: A Lossless Federated Learning Framework", IEEE Intelligent Systems 2021).

Notation (docs/secureboost.md, docs/protocols.md): g, h are the gradient and hessian of the
logistic loss of each training row, known to the guest only; [[v]] is v under the guest's
Paillier key, which only the guest can decrypt. A host's candidate splits ("bins <= b of
feature f go left", missing values left or right) are listed once per training in an order
only the host knows (a random permutation): their position in that list is the opaque split
id the guest sees.

Once per training, the handshake of the session's start (`vfl.algorithms.session_start`,
after plan, plan_ack and resume; `guest_key` / `host_key`):
    guest -> hosts   "pk_g"        the guest's public key (hosts check its size)
Per tree t (step ``train/epoch/<t>``):
 1 guest -> hosts   "gh"          [[g * 2^S + h]] per row: g and h packed in one plaintext
Per level d of the tree (step ``.../level/<d>``):
 2 guest -> hosts   "level"       the row -> node assignment of the level's open nodes, and
                                  which of them ("direct") to sum: the root, then the smaller
                                  child of each split node
 3 host  -> guest   "hist"        per direct node, [[(G_L, H_L)]] of every split id, summed
                                  with ciphertext multiplications only and packed several per
                                  ciphertext; re-randomized
 4 guest                          decrypts; the larger child's sums are its parent's minus
                                  its sibling's (plaintext subtraction); best gain per node
                                  over its own features and every host's split ids
 5 guest -> host    "split"       per host, the nodes whose best split is that host's, by
                                  split id (an empty list for the others)
 6 host  -> guest   "partition"   per such node, which of its rows go left, and the column of
                                  the host's table that now holds the split (the guest checks
                                  that the left rows' gradients sum to the G_L it decrypted)
At the end of the tree (the estimator's epoch; the session sends its decision):
 7 host  -> guest   "tree_end"    with a validation set, the routing bits of the tree's new
                                  host columns for the validation rows
 8 guest -> hosts   "epoch_decision"  best / stop

The host never decrypts and never sees a gradient, hessian or label-dependent value in the
clear; the guest never sees a host's feature values, features or thresholds, only split ids
and the left/right partition of the host's winning splits (as in the paper).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vfl.algorithms.secureboost.binning import Bins
from vfl.algorithms.secureboost.histograms import (
    Candidates,
    encrypted_candidates,
    encrypted_histogram,
    plain_candidates,
    plain_histogram,
)
from vfl.algorithms.secureboost.model import GUEST
from vfl.algorithms.secureboost.packing import GHLayout, horner_pack
from vfl.algorithms.secureboost.tree import SplitRule, Tree
from vfl.crypto import (
    EncryptedArray,
    PaillierPrivateKey,
    PaillierPublicKey,
    generate_keypair,
    kernels,
)
from vfl.errors import ProtocolError
from vfl.parties.context import Context

SUM_TOLERANCE = 1e-6  # a host's left rows must sum to the decrypted G_L up to rounding


# --- keys ----------------------------------------------------------------------------------
def guest_key(ctx: Context, key_bits: int) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    public, private = generate_keypair(n_bits=key_bits)
    ctx.broadcast("pk_g", public.to_wire())
    return public, private


def host_key(ctx: Context, key_bits: int) -> PaillierPublicKey:
    key = PaillierPublicKey.from_wire(ctx.recv(ctx.guest, "pk_g"))
    if key.n.bit_length() < key_bits:
        raise ProtocolError(f"'{ctx.guest}''s Paillier key has {key.n.bit_length()} bits, plan says {key_bits}")
    return key


# --- what each side brings ---------------------------------------------------------------
@dataclass
class GuestTreeInputs:
    """The guest's own side of one tree: its binned features, gradients and settings."""

    codes: np.ndarray  # (n, features) bin codes
    bins: Bins
    candidates: Candidates
    usable: np.ndarray  # per candidate: its feature is sampled for this tree
    g: np.ndarray  # quantized, zero for rows left out of this tree's sample
    h: np.ndarray
    rule: SplitRule
    max_depth: int
    layout: GHLayout
    key_bits: int
    host_candidates: dict[str, int]  # split ids per host


@dataclass
class HostTreeInputs:
    """A host's own side of one tree."""

    codes: np.ndarray
    bins: Bins
    candidates: Candidates
    order: np.ndarray  # split id -> candidate (the host's secret permutation)
    usable: np.ndarray  # per candidate: its feature is sampled for this tree
    layout: GHLayout
    key_bits: int


@dataclass
class HostSplits:
    """The splits a host won in one tree: one column of its table each."""

    feature: list[int] = field(default_factory=list)
    threshold: list[float] = field(default_factory=list)
    missing_left: list[bool] = field(default_factory=list)


@dataclass
class _Open:
    """A node of the current level that may still split."""

    node: int
    rows: np.ndarray
    sibling: int  # index in this level, -1 for the root
    parent_sums: dict[str, tuple[np.ndarray, np.ndarray]]  # the parent's (G_L, H_L) per host
    sums: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Choice:
    owner: int  # GUEST or 1 + host index
    index: int  # the guest's candidate or the host's split id
    gain: float
    g_left: float


def _smaller_children(level: list[_Open]) -> list[int]:
    """Which nodes of a level to sum directly: the root, or the smaller of two siblings."""
    return [i for i, o in enumerate(level)
            if o.sibling < 0 or (len(o.rows), i) < (len(level[o.sibling].rows), o.sibling)]


# --- one tree ------------------------------------------------------------------------------
def guest_tree(ctx: Context, public: PaillierPublicKey, private: PaillierPrivateKey,
               inp: GuestTreeInputs, columns: dict[str, int]) -> tuple[Tree, np.ndarray]:
    """Grow one tree with the hosts.

    Returns the tree and each training row's leaf value; `columns` (each host's table size)
    grows by the host splits of this tree.
    """
    ex, hosts, n = ctx.executor, sorted(ctx.hosts), len(inp.g)
    ctx.broadcast("gh", public.encrypt(inp.layout.encode_rows(inp.g, inp.h), executor=ex).to_wire())
    tree = Tree()
    level = [_Open(tree.leaf(0.0), np.arange(n), -1, {})]
    leaves: list[_Open] = []
    for depth in range(inp.max_depth):
        lctx = ctx.child("level", depth)
        direct = _smaller_children(level)
        assign = np.full(n, -1, dtype=np.int32)
        for i, o in enumerate(level):
            assign[o.rows] = i
        lctx.broadcast("level", {"nodes": len(level), "assign": assign, "direct": direct})
        if not level:
            break
        for host in hosts:
            _receive_sums(lctx, host, private, inp, level, direct)
        chosen = [_best_split(o, inp, hosts) for o in level]
        won: dict[str, list[list[int]]] = {h: [] for h in hosts}
        for i, c in enumerate(chosen):
            if c is not None and c.owner != GUEST:
                won[hosts[c.owner - 1]].append([i, c.index])
        for host in hosts:
            lctx.send(host, "split", {"nodes": won[host]})
        lefts: dict[int, tuple[np.ndarray, int]] = {}
        for host in hosts:
            lefts.update(_receive_partition(lctx, host, won[host], level, chosen, inp, columns))
        following: list[_Open] = []
        for i, (o, c) in enumerate(zip(level, chosen, strict=True)):
            if c is None:
                leaves.append(o)
                continue
            if c.owner == GUEST:
                f, b = int(inp.candidates.feature[c.index]), int(inp.candidates.bin[c.index])
                ml = bool(inp.candidates.missing_left[c.index])
                x = inp.codes[o.rows, f]
                go_left = np.where(x == inp.bins.max_bin, ml, x <= b)
                feature, threshold = f, inp.bins.threshold(f, b)
            else:
                (go_left, feature), threshold, ml = lefts[i], 0.0, False
            left, right = tree.leaf(0.0), tree.leaf(0.0)
            tree.split(o.node, c.owner, feature, threshold, ml, c.gain, left, right)
            k = len(following)
            following.append(_Open(left, o.rows[go_left], k + 1, o.sums))
            following.append(_Open(right, o.rows[~go_left], k, o.sums))
        level = following
    update = np.zeros(n)
    for o in leaves + level:
        tree.value[o.node] = inp.rule.leaf(float(inp.g[o.rows].sum()), float(inp.h[o.rows].sum()))
        update[o.rows] = tree.value[o.node]
    return tree, update


def _receive_sums(ctx: Context, host: str, private: PaillierPrivateKey, inp: GuestTreeInputs,
                  level: list[_Open], direct: list[int]) -> None:
    """Decrypt a host's packed (G_L, H_L) of the direct nodes; derive their siblings'."""
    count, layout = inp.host_candidates[host], inp.layout
    per = layout.per_ciphertext(inp.key_bits)
    enc = EncryptedArray.from_wire(ctx.recv(host, "hist"), private.public_key)
    shape = (len(direct), -(-count // per))
    if enc.shape != shape or enc.scale_bits != 0 or enc.bound > layout.packed_bound(per):
        raise ProtocolError(f"'hist' from '{host}' at step '{ctx.step}' must be {shape} packed "
                            f"histograms of at most {layout.pair_bits * per} bits, got {enc.shape}")
    ints = private.decrypt_encoded(enc, ctx.executor).ints
    for row, i in enumerate(direct):
        level[i].sums[host] = layout.unpack(ints[row].tolist(), count, per)
    for i, o in enumerate(level):
        if i not in direct:
            (pg, ph), (sg, sh) = o.parent_sums[host], level[o.sibling].sums[host]
            o.sums[host] = (pg - sg, ph - sh)


def _best_split(o: _Open, inp: GuestTreeInputs, hosts: list[str]) -> _Choice | None:
    """The best allowed split of a node over the guest's candidates and every host's split ids
    (ties go to the guest, then to the hosts in name order); None when none gains."""
    g, h = inp.g[o.rows], inp.h[o.rows]
    G, H = float(g.sum()), float(h.sum())
    own = plain_candidates(*plain_histogram(inp.codes[o.rows], g, h, inp.bins.n_codes), inp.candidates)
    options = [(GUEST, *own, inp.usable)] + [(k + 1, *o.sums[host], None) for k, host in enumerate(hosts)]
    best: _Choice | None = None
    for owner, gl, hl, usable in options:
        gains = inp.rule.gains(gl, hl, G, H)
        if usable is not None:
            gains[~usable] = -np.inf
        if gains.size and np.isfinite(gains.max()) and (best is None or gains.max() > best.gain):
            k = int(np.argmax(gains))
            best = _Choice(owner, k, float(gains[k]), float(gl[k]))
    return best


def _receive_partition(ctx: Context, host: str, won: list[list[int]], level: list[_Open],
                       chosen: list[_Choice | None], inp: GuestTreeInputs,
                       columns: dict[str, int]) -> dict[int, tuple[np.ndarray, int]]:
    """A host's left rows of the nodes it won, checked against the G_L the guest decrypted."""
    reply = ctx.recv(host, "partition")
    first = columns[host]
    expected = list(range(first, first + len(won)))
    if (not isinstance(reply, dict) or set(reply) != {"left", "columns"} or not isinstance(reply["left"], list)
            or len(reply["left"]) != len(won) or reply["columns"] != expected):
        raise ProtocolError(f"'partition' from '{host}' at step '{ctx.step}' must give the left rows of "
                            f"{len(won)} nodes and columns {expected}")
    out = {}
    for (i, _), left, column in zip(won, reply["left"], expected, strict=True):
        rows = level[i].rows
        if (not isinstance(left, np.ndarray) or left.shape != rows.shape or left.dtype.kind not in "bu"
                or (left.size and left.max() > 1)):
            raise ProtocolError(f"'partition' from '{host}' at step '{ctx.step}': node {i} needs "
                                f"{len(rows)} flags of 0/1")
        go_left = left.astype(bool)
        c = chosen[i]
        assert c is not None
        if abs(float(inp.g[rows[go_left]].sum()) - c.g_left) > SUM_TOLERANCE * max(1.0, abs(c.g_left)):
            raise ProtocolError(f"'partition' from '{host}' at step '{ctx.step}': the left rows of node {i} "
                                "do not match the split's decrypted gradient sum")
        out[i] = (go_left, column)
    columns[host] = first + len(won)
    return out


def _check_level(ctx: Context, n: int) -> tuple[int, np.ndarray, list[int]]:
    msg = ctx.recv(ctx.guest, "level")
    bad = ProtocolError(f"'level' from '{ctx.guest}' at step '{ctx.step}' must assign {n} rows to "
                        "its nodes and list distinct direct nodes")
    if not isinstance(msg, dict) or set(msg) != {"nodes", "assign", "direct"}:
        raise bad
    nodes, assign, direct = msg["nodes"], msg["assign"], msg["direct"]
    if (not isinstance(nodes, int) or isinstance(nodes, bool) or not 0 <= nodes <= 2 * n + 1
            or not isinstance(assign, np.ndarray) or assign.shape != (n,) or assign.dtype.kind != "i"
            or (n and (assign.min() < -1 or assign.max() >= nodes))
            or not isinstance(direct, list) or len(set(direct)) != len(direct)
            or not all(isinstance(i, int) and 0 <= i < nodes for i in direct)):
        raise bad
    return nodes, assign, direct


def _check_split_request(ctx: Context, request: Any, nodes: int, ids: int) -> list[tuple[int, int]]:
    pairs = request.get("nodes") if isinstance(request, dict) and set(request) == {"nodes"} else None
    if (not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in p)
            and 0 <= p[0] < nodes and 0 <= p[1] < ids for p in pairs)
            or len({p[0] for p in pairs}) != len(pairs)):
        raise ProtocolError(f"'split' from '{ctx.guest}' at step '{ctx.step}' must list [node, split id] "
                            f"pairs of distinct nodes < {nodes} and ids < {ids}")
    return [(p[0], p[1]) for p in pairs]


def host_tree(ctx: Context, key: PaillierPublicKey, inp: HostTreeInputs, max_depth: int,
              first_column: int) -> HostSplits:
    """This host's side of one tree: encrypted histograms per level, partitions of its wins
    (its table's new columns are numbered from `first_column`)."""
    ex, nsq, n = ctx.executor, int(key.nsquare), len(inp.codes)
    gh = EncryptedArray.from_wire(ctx.recv(ctx.guest, "gh"), key)
    if gh.shape != (n,) or gh.scale_bits != 0 or gh.bound > inp.layout.pair_bound():
        raise ProtocolError(f"'gh' from '{ctx.guest}' at step '{ctx.step}' must be {n} packed (g, h) pairs "
                            f"of at most {inp.layout.pair_bits} bits, got shape {gh.shape}")
    cs = list(gh.ciphertexts)
    per = inp.layout.per_ciphertext(inp.key_bits)
    out = HostSplits()
    for depth in range(max_depth):
        lctx = ctx.child("level", depth)
        n_open, assign, direct = _check_level(lctx, n)
        if n_open == 0:
            break
        packed: list[Any] = []
        for i in direct:
            rows = np.flatnonzero(assign == i)
            hist = encrypted_histogram(nsq, [cs[r] for r in rows], inp.codes[rows], inp.bins.n_codes, ex)
            sums = encrypted_candidates(nsq, hist, inp.candidates)
            ordered = [sums[c] if inp.usable[c] else kernels.ONE for c in inp.order.tolist()]
            groups = [ordered[a:a + per] for a in range(0, len(ordered), per)]
            calls = [(nsq, inp.layout.pair_bits, chunk)
                     for chunk in kernels.split(groups, kernels.workers(ex), min_size=4)]
            packed.extend(c for part in kernels.run(ex, horner_pack, calls) for c in part)
        n_ct = -(-len(inp.order) // per)
        cts = np.empty(len(packed), dtype=object)
        cts[:] = packed
        hist_enc = EncryptedArray(key, cts.reshape(len(direct), n_ct), 0,
                                  inp.layout.packed_bound(per)).rerandomize(ex)
        lctx.send(ctx.guest, "hist", hist_enc.to_wire())
        request = lctx.recv(ctx.guest, "split")
        nodes = _check_split_request(lctx, request, n_open, len(inp.order))
        left_rows, cols = [], []
        for i, split_id in nodes:
            c = int(inp.order[split_id])
            if not inp.usable[c]:
                raise ProtocolError(f"'split' from '{ctx.guest}' names split id {split_id}, which this tree "
                                    "did not offer")
            f, b, ml = int(inp.candidates.feature[c]), int(inp.candidates.bin[c]), bool(inp.candidates.missing_left[c])
            x = inp.codes[assign == i, f]
            left_rows.append(np.where(x == inp.bins.max_bin, ml, x <= b).astype(np.uint8))
            cols.append(first_column + len(out.feature))
            out.feature.append(f)
            out.threshold.append(inp.bins.threshold(f, b))
            out.missing_left.append(ml)
        lctx.send(ctx.guest, "partition", {"left": left_rows, "columns": cols})
    return out


def new_order(count: int) -> np.ndarray:
    """A host's secret order of its candidates (split id -> candidate), from OS entropy."""
    order = list(range(count))
    secrets.SystemRandom().shuffle(order)
    return np.asarray(order, dtype=np.int64)
