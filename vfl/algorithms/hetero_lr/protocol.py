"""HE logistic regression, one mini-batch: the guest's and the hosts' steps side by side.

Notation (docs/protocols.md §4): labels y in {-1, +1}; z = X_g w_g + sum_h X_h w_h (the
intercept is the guest's last weight, X_g carries a column of ones); Taylor residual
d = z/4 - y/2; row weights s of the batch sum to 1 (1/|B| when unweighted), so the gradient
of party p is g_p = X_p^T (s * d). [[v]]_K is v encrypted under party K's key; the first host
("lead") decrypts for the guest, the guest decrypts for every host.

1. host:  [[z_h]]_lead                                  -> guest          "z_h"
2. guest: [[g_g]]_lead = (X_g s/4)^T [[sum z_h]] + X_g^T u,  u = s (z_g/4 - y/2)
          blinded [[g_g + r_g]]_lead                    -> lead host      "grad_g_masked"
          g_g + r_g                                     <- lead host      "grad_g_plain_masked"
3. guest: [[u]]_G                                       -> host 1         "d_g"
   each host adds s z_h/4 and passes it on ("d_g"); the last one holds [[s d]]_G and sends
   it to the others ("d"), never to the guest (which could decrypt it).
   host:  [[g_h + r_h]]_G = X_h^T [[s d]]_G + r_h        -> guest          "grad_h_masked"
          g_h + r_h                                     <- guest          "grad_h_plain_masked"
With sample or class weights the hosts need s, which depends on labels: the guest sends it
encrypted ([[s]]_G, "s_g") and each host multiplies it by its plaintext z_h/4.

`insecure_plaintext` mode runs the same exchange in the clear (z_h and s*d cross the
boundary unencrypted) for fast experiments only; a host must allow it in its policy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vfl.crypto import (
    EncodedArray,
    EncryptedArray,
    PaillierPrivateKey,
    PaillierPublicKey,
    generate_keypair,
)
from vfl.errors import ProtocolError
from vfl.parties.context import Context

STAT_BITS = 40  # masks are 2^40 times wider than the values they hide


@dataclass(frozen=True)
class Keys:
    """This party's key pair plus the public keys it encrypts under."""

    public: PaillierPublicKey
    private: PaillierPrivateKey
    guest: PaillierPublicKey  # the guest's key: [[d]]_G, [[g_h + r_h]]_G
    lead: PaillierPublicKey  # the first host's key: [[z_h]], [[g_g + r_g]]


def _check_key(key: PaillierPublicKey, key_bits: int, who: str) -> PaillierPublicKey:
    if key.n.bit_length() < key_bits:
        raise ProtocolError(f"{who}'s Paillier key has {key.n.bit_length()} bits, plan says {key_bits}")
    return key


def guest_keys(ctx: Context, key_bits: int) -> Keys:
    public, private = generate_keypair(n_bits=key_bits)
    ctx.broadcast("pk_g", public.to_wire())
    lead = ctx.hosts[0]
    lead_key = _check_key(PaillierPublicKey.from_wire(ctx.recv(lead, "pk_lead")), key_bits, lead)
    return Keys(public, private, public, lead_key)


def host_keys(ctx: Context, key_bits: int) -> Keys:
    public, private = generate_keypair(n_bits=key_bits)
    hosts = ctx.hosts
    if ctx.name == hosts[0]:
        ctx.broadcast("pk_lead", public.to_wire(), to=[ctx.guest, *hosts[1:]])
        lead_key = public
    else:
        lead_key = PaillierPublicKey.from_wire(ctx.recv(hosts[0], "pk_lead"))
        _check_key(lead_key, key_bits, hosts[0])
    guest_key = _check_key(PaillierPublicKey.from_wire(ctx.recv(ctx.guest, "pk_g")), key_bits, ctx.guest)
    return Keys(public, private, guest_key, lead_key)


def _cipher(ctx: Context, peer: str, tag: str, key: PaillierPublicKey, shape: tuple[int, ...]) -> EncryptedArray:
    enc = EncryptedArray.from_wire(ctx.recv(peer, tag), key)
    if enc.shape != shape:
        raise ProtocolError(f"'{tag}' from '{peer}' at step '{ctx.step}' has shape {enc.shape}, expected {shape}")
    return enc


def _plain(ctx: Context, peer: str, tag: str, shape: tuple[int, ...]) -> np.ndarray:
    value = ctx.recv(peer, tag)
    if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != np.float64:
        raise ProtocolError(f"'{tag}' from '{peer}' at step '{ctx.step}' must be float64 of shape {shape}")
    if not np.all(np.isfinite(value)):
        raise ProtocolError(f"'{tag}' from '{peer}' at step '{ctx.step}' has non-finite values")
    return value


# --- HE mode -----------------------------------------------------------------------------
def guest_batch(
    ctx: Context, keys: Keys, X: np.ndarray, y: np.ndarray, s: np.ndarray, w: np.ndarray,
    weighted: bool, host_widths: dict[str, int],
) -> np.ndarray:
    """The guest's gradient of one batch (X with its ones column, y in {-1, +1})."""
    ex, hosts, lead = ctx.executor, ctx.hosts, ctx.hosts[0]
    u = s * (X @ w / 4 - y / 2)
    ctx.send(lead, "d_g", keys.public.encrypt(u, executor=ex).to_wire())
    if weighted:
        ctx.broadcast("s_g", keys.public.encrypt(s, executor=ex).to_wire())
    z_h = _cipher(ctx, hosts[0], "z_h", keys.lead, (len(X),))
    for h in hosts[1:]:
        z_h = z_h + _cipher(ctx, h, "z_h", keys.lead, (len(X),))
    grad = keys.lead.matmul((X * (s / 4)[:, None]).T, z_h, executor=ex) + X.T @ u
    masked, mask = grad.blind(stat_bits=STAT_BITS, executor=ex)
    ctx.send(lead, "grad_g_masked", masked.to_wire())
    for h in hosts:
        theirs = _cipher(ctx, h, "grad_h_masked", keys.public, (host_widths[h],))
        ctx.send(h, "grad_h_plain_masked", keys.private.decrypt_encoded(theirs, ex).to_wire())
    return mask.unblind(EncodedArray.from_wire(ctx.recv(lead, "grad_g_plain_masked")))


def host_batch(
    ctx: Context, keys: Keys, X: np.ndarray, w: np.ndarray, weighted: bool, guest_width: int
) -> np.ndarray:
    """This host's gradient of one batch; the lead host also decrypts the guest's."""
    ex, guest, hosts = ctx.executor, ctx.guest, ctx.hosts
    i, n = hosts.index(ctx.name), len(X)
    z_h = X @ w
    ctx.send(guest, "z_h", keys.lead.encrypt(z_h, executor=ex).to_wire())
    prev = guest if i == 0 else hosts[i - 1]
    d = _cipher(ctx, prev, "d_g", keys.guest, (n,))
    if weighted:
        d = d + _cipher(ctx, guest, "s_g", keys.guest, (n,)).mul(z_h / 4, executor=ex)
    else:
        d = d + z_h / (4 * n)
    if i + 1 < len(hosts):
        ctx.send(hosts[i + 1], "d_g", d.to_wire())
        d = _cipher(ctx, hosts[-1], "d", keys.guest, (n,))
    elif len(hosts) > 1:
        ctx.broadcast("d", d.to_wire(), to=hosts[:-1])
    grad = keys.guest.matmul(X.T, d, executor=ex)
    masked, mask = grad.blind(stat_bits=STAT_BITS, executor=ex)
    ctx.send(guest, "grad_h_masked", masked.to_wire())
    if i == 0:
        theirs = _cipher(ctx, guest, "grad_g_masked", keys.public, (guest_width,))
        ctx.send(guest, "grad_g_plain_masked", keys.private.decrypt_encoded(theirs, ex).to_wire())
    return mask.unblind(EncodedArray.from_wire(ctx.recv(guest, "grad_h_plain_masked")))


# --- insecure plaintext mode (experiments only) ------------------------------------------
def guest_batch_plaintext(
    ctx: Context, X: np.ndarray, y: np.ndarray, s: np.ndarray, w: np.ndarray
) -> np.ndarray:
    """INSECURE: receives every host's z_h and sends s*d in the clear."""
    z = X @ w + sum(_plain(ctx, h, "z_h", (len(X),)) for h in ctx.hosts)
    d = s * (z / 4 - y / 2)
    ctx.broadcast("d", d)
    return X.T @ d


def host_batch_plaintext(ctx: Context, X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """INSECURE: sends z_h and receives s*d in the clear."""
    ctx.send(ctx.guest, "z_h", X @ w)
    return X.T @ _plain(ctx, ctx.guest, "d", (len(X),))
