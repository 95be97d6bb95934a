"""The interactive layer of split NN: ``z_h = A W`` with ``W = U + V`` split between the parties.

The host's bottom model gives ``A`` (n x k); the guest holds ``U``, the host ``V`` (k x d);
``G = dL/d(A W)`` is computed by the guest's top model. Per mini-batch, in `he` mode:

    forward      guest -> host   enc_U        [[U]]_G                       (k rows, packed)
                 host -> guest   enc_AW       [[A U + A V]]_G = A [[U]]_G + A V  -> guest decrypts A W
                 host -> guest   enc_A        [[A]]_H                       (n rows, packed)
    backward     host -> guest   enc_Vt       [[V^T]]_H                     (d rows, packed)
                 guest -> host   enc_dA       [[G V^T + G U^T]]_H           -> host decrypts dL/dA = G W^T
                 guest -> host   AtG_plus_R2  [[A^T G + R2]]_H              -> host: V -= lr (A^T G + R2)
                                                                             guest: U -= lr (-R2)

So the guest sees ``A W`` and nothing else in plaintext; the host sees ``G W^T`` and the
weight gradient hidden by the guest's noise ``R2``; neither ever holds ``W``. Versus the
textbook form (host sends [[A]], gets [[A U]] + R back; docs/protocols.md §5) each party encrypts its own
small share instead of the other's big activations, so the products run against k or d fixed
ciphertexts and no n x d masks are needed; several values share one ciphertext
(`slot_packing`), which divides the decryptions, the dominant cost, by the layer width.
Every computed ciphertext is re-randomized before it leaves, so it reveals only its plaintext.

`plain` mode (hosts must allow it): the host sends ``A`` in the clear, the guest holds all of
``W`` and returns ``dL/dA``, optionally with Gaussian noise against label leakage.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from vfl.algorithms.slot_packing import SlotLayout, fixed_exponents, to_fixed
from vfl.crypto import EncryptedArray, PaillierPrivateKey, PaillierPublicKey
from vfl.errors import ProtocolError
from vfl.parties.context import Context

FRAC_ACT = 32  # fixed-point bits of host activations A
FRAC_SHARE = 32  # of the weight shares U, V
FRAC_GRAD = 40  # of G = dL/d(AW): small values (a mean over the batch)
WEIGHT_MASK_SCALE = 1.0
"""R2 is uniform in [-WEIGHT_MASK_SCALE, WEIGHT_MASK_SCALE]: noise (not a statistically hiding
mask: V must stay a usable float) over a weight gradient whose entries are typically < 0.1."""


@dataclass
class Share:
    """One party's additive share of W with its SGD-momentum buffer.

    Momentum is linear, so the shares' buffers add up to the buffer of plain SGD on W."""

    value: np.ndarray
    velocity: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.velocity = np.zeros_like(self.value)

    def step(self, grad: np.ndarray, lr: float, momentum: float) -> None:
        self.velocity = momentum * self.velocity + grad
        self.value = self.value - lr * self.velocity


def init_share(rng: np.random.Generator, k: int, d: int, parties: int) -> np.ndarray:
    """Uniform share such that the sum of `parties` shares has the variance of torch's default
    Linear init (1 / (3k)); each party draws its own, so nobody knows the initial W."""
    bound = 1.0 / np.sqrt(parties * k)
    return rng.uniform(-bound, bound, size=(k, d))


@dataclass(frozen=True)
class HeKeys:
    """This party's key pair, its peer's public key and the executor for the crypto work."""

    own: PaillierPublicKey
    private: PaillierPrivateKey
    peer: PaillierPublicKey
    executor: Executor | None


@dataclass(frozen=True)
class Layouts:
    """Slot layouts both parties derive from public facts (widths, batch size, key sizes)."""

    aw: SlotLayout  # A W under the guest's key: d slots per row
    da: SlotLayout  # dL/dA under the host's key: k slots per row
    atg: SlotLayout  # (A^T G)^T under the host's key: k slots per row, sums over the batch

    @classmethod
    def build(cls, k: int, d: int, batch: int, guest_bits: int, host_bits: int) -> Layouts:
        return cls(
            aw=SlotLayout.for_product(d, k, FRAC_SHARE, FRAC_ACT, guest_bits),
            da=SlotLayout.for_product(k, d, FRAC_SHARE, FRAC_GRAD, host_bits),
            atg=SlotLayout.for_product(k, batch, FRAC_ACT, FRAC_GRAD, host_bits),
        )


def _encrypt_packed(key: PaillierPublicKey, x: np.ndarray, frac: int, layout: SlotLayout,
                    executor: Executor | None, what: str) -> dict[str, object]:
    return key.encrypt(layout.pack(to_fixed(x, frac, what)), executor=executor).to_wire()


def _recv_cipher(ctx: Context, peer: str, tag: str, key: PaillierPublicKey,
                 shape: tuple[int, ...]) -> EncryptedArray:
    enc = EncryptedArray.from_wire(ctx.recv(peer, tag), key)
    if enc.shape != shape or enc.scale_bits != 0:
        raise ProtocolError(
            f"'{tag}' from '{peer}' at step '{ctx.step}': shape {enc.shape} / scale "
            f"{enc.scale_bits}, expected {shape} / 0"
        )
    return enc


def recv_array(ctx: Context, peer: str, tag: str, shape: tuple[int, ...]) -> np.ndarray:
    value = ctx.recv(peer, tag)
    if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype.kind != "f":
        got = (value.shape, value.dtype) if isinstance(value, np.ndarray) else type(value).__name__
        raise ProtocolError(f"'{tag}' from '{peer}' at step '{ctx.step}': expected a float array "
                            f"of shape {shape}, got {got}")
    if not np.all(np.isfinite(value)):
        raise ProtocolError(f"'{tag}' from '{peer}' at step '{ctx.step}' has NaN/inf values")
    return value.astype(np.float64)


# --- he mode: forward ------------------------------------------------------------------------
def guest_forward(ctx: Context, host: str, U: np.ndarray, n: int, keys: HeKeys,
                  lay: Layouts) -> np.ndarray:
    """Returns A W (n x d) for the host's current batch; sees nothing else of A."""
    ctx.send(host, "enc_U", _encrypt_packed(keys.own, U, FRAC_SHARE, lay.aw, keys.executor, "U"))
    enc_AW = _recv_cipher(ctx, host, "enc_AW", keys.own, (n, lay.aw.groups))
    return lay.aw.unpack(keys.private.decrypt_encoded(enc_AW, keys.executor).ints,
                         FRAC_ACT + FRAC_SHARE)


def host_forward(ctx: Context, A: np.ndarray, V: np.ndarray, keys: HeKeys, lay: Layouts,
                 training: bool) -> None:
    """Sends [[A W]]_G (and, when training, [[A]]_H for the weight gradient)."""
    k = A.shape[1]
    enc_U = _recv_cipher(ctx, ctx.guest, "enc_U", keys.peer, (k, lay.aw.groups))
    A_U = keys.peer.matmul(fixed_exponents(A, FRAC_ACT, "host bottom output A"), enc_U,
                           executor=keys.executor)
    enc_AW = A_U + lay.aw.pack(to_fixed(A @ V, FRAC_ACT + FRAC_SHARE, "A V"))
    ctx.send(ctx.guest, "enc_AW", enc_AW.rerandomize(keys.executor).to_wire())
    if training:
        ctx.send(ctx.guest, "enc_A",
                 _encrypt_packed(keys.own, A, FRAC_ACT, lay.atg, keys.executor, "A"))


# --- he mode: backward -----------------------------------------------------------------------
def guest_backward(ctx: Context, host: str, G: np.ndarray, U: np.ndarray, keys: HeKeys,
                   lay: Layouts, rng: np.random.Generator) -> np.ndarray:
    """Gives the host dL/dA and its masked weight gradient; returns the guest's share of
    dL/dW (-R2), so that the two shares' steps add up to a step on W."""
    n, d = G.shape
    k = U.shape[0]
    G_fx = fixed_exponents(G, FRAC_GRAD, "gradient G")
    enc_Vt = _recv_cipher(ctx, host, "enc_Vt", keys.peer, (d, lay.da.groups))
    enc_dA = keys.peer.matmul(G_fx, enc_Vt, executor=keys.executor) + lay.da.pack(
        to_fixed(G @ U.T, FRAC_GRAD + FRAC_SHARE, "G U^T"))
    ctx.send(host, "enc_dA", enc_dA.rerandomize(keys.executor).to_wire())

    enc_A = _recv_cipher(ctx, host, "enc_A", keys.peer, (n, lay.atg.groups))
    R2 = rng.uniform(-WEIGHT_MASK_SCALE, WEIGHT_MASK_SCALE, size=(k, d))
    enc_AtG_R2 = keys.peer.matmul(np.ascontiguousarray(G_fx.T), enc_A, executor=keys.executor)
    enc_AtG_R2 = enc_AtG_R2 + lay.atg.pack(to_fixed(R2.T, FRAC_GRAD + FRAC_ACT, "R2"))
    ctx.send(host, "AtG_plus_R2", enc_AtG_R2.rerandomize(keys.executor).to_wire())
    return -R2


def host_backward(ctx: Context, V: np.ndarray, n: int, keys: HeKeys,
                  lay: Layouts) -> tuple[np.ndarray, np.ndarray]:
    """Returns (dL/dA = G W^T, A^T G + R2): the input gradient and V's masked gradient."""
    k, d = V.shape
    ctx.send(ctx.guest, "enc_Vt",
             _encrypt_packed(keys.own, V.T, FRAC_SHARE, lay.da, keys.executor, "V"))
    enc_dA = _recv_cipher(ctx, ctx.guest, "enc_dA", keys.own, (n, lay.da.groups))
    dA = lay.da.unpack(keys.private.decrypt_encoded(enc_dA, keys.executor).ints,
                       FRAC_GRAD + FRAC_SHARE)
    enc_g = _recv_cipher(ctx, ctx.guest, "AtG_plus_R2", keys.own, (d, lay.atg.groups))
    g_V = lay.atg.unpack(keys.private.decrypt_encoded(enc_g, keys.executor).ints,
                         FRAC_GRAD + FRAC_ACT).T
    return dA, g_V


# --- plain mode (less private: A and dL/dA in the clear) -------------------------------------
def host_forward_plain(ctx: Context, A: np.ndarray) -> None:
    ctx.send(ctx.guest, "A", np.ascontiguousarray(A, dtype=np.float64))


def guest_forward_plain(ctx: Context, host: str, n: int, k: int) -> np.ndarray:
    return recv_array(ctx, host, "A", (n, k))


def guest_backward_plain(ctx: Context, host: str, A: np.ndarray, G: np.ndarray, W: np.ndarray,
                         noise_scale: float, rng: np.random.Generator) -> np.ndarray:
    """Sends dL/dA = G W^T (+ noise); returns dL/dW = A^T G.

    The noise defense adds N(0, s^2) per entry with s = noise_scale * rms row norm / sqrt(k):
    at noise_scale 1 the noise on a row is as large as a typical true gradient row, which
    drowns the norm difference between positive and negative rows that leaks labels."""
    dA = G @ W.T
    if noise_scale > 0:
        rms = float(np.sqrt(np.mean(np.sum(dA * dA, axis=1))))
        dA = dA + rng.normal(0.0, noise_scale * rms / np.sqrt(dA.shape[1]), size=dA.shape)
    ctx.send(host, "dL_dA", dA)
    return A.T @ G


def host_backward_plain(ctx: Context, n: int, k: int) -> np.ndarray:
    return recv_array(ctx, ctx.guest, "dL_dA", (n, k))
