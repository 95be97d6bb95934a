"""One protocol for "each host adds its part to the score": the joint predict of a job.

Every algorithm's model parts speak it: a host part has ``contribution(X_h) -> (n, k)`` (its
share of the score of each row, e.g. ``X_h w_h`` for LR, ``bottom_h(X_h) W_h`` for split NN)
and the guest part has ``predict_proba(X_g, contributions) -> (n,)``. Inside a job the guest
asks every host for the contributions of the same aligned rows:

    guest -> every host: predict {n_rows}
    host  -> guest:      contribution (n_rows, k) float64

Batch and online scoring carry the same contributions over the serving API
(`vfl.serving.scoring`), and hand them to the guest part in the order of the hosts' names (a
part whose hosts play different roles, like SecureBoost's, relies on that order). The guest checks every received contribution (a float array, one row
per asked row, the algorithm's width, all finite) before using it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from vfl.errors import ProtocolError

if TYPE_CHECKING:
    from vfl.parties.context import Context

REQUEST = "predict"
CONTRIBUTION = "contribution"


class HostPart(Protocol):
    """A host's model part: its share of the score of each row."""

    def contribution(self, X: np.ndarray) -> np.ndarray: ...


class GuestPart(Protocol):
    """The guest's model part: merges its rows with the hosts' contributions into scores."""

    def predict_proba(self, X: np.ndarray, contributions: list[np.ndarray]) -> np.ndarray: ...


def check_contribution(value: Any, n_rows: int, host: str, width: int | None = None) -> np.ndarray:
    """A received contribution as an (n_rows, k) float64 array.

    Raises
    ------
    ProtocolError
        Naming the host, when it is not a finite float array of `n_rows` rows (and `width`
        columns when given).
    """
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fi":
        raise ProtocolError(f"host '{host}' sent {type(value).__name__} as '{CONTRIBUTION}', "
                            "expected a float array")
    c = value.astype(np.float64).reshape(value.shape[0], -1) if value.ndim == 1 else value.astype(np.float64)
    if c.ndim != 2 or c.shape[0] != n_rows or (width is not None and c.shape[1] != width):
        expected = f"({n_rows}, {width})" if width is not None else f"{n_rows} rows"
        raise ProtocolError(f"host '{host}' sent a contribution of shape {value.shape}, expected "
                            f"{expected} (are both row sets aligned by the same PSI run?)")
    if not np.all(np.isfinite(c)):
        raise ProtocolError(f"host '{host}' sent NaN/infinite contributions")
    return c


def guest_collect(ctx: Context, n_rows: int, width: int | None = None) -> list[np.ndarray]:
    """Ask every host for its contributions to `n_rows` aligned rows; one checked array each."""
    pctx = ctx.child("predict")
    pctx.broadcast(REQUEST, {"n_rows": n_rows})
    return [check_contribution(pctx.recv(h, CONTRIBUTION), n_rows, h, width) for h in pctx.hosts]


def host_contribute(ctx: Context, X: np.ndarray, part: HostPart) -> None:
    """Answer one request of the guest with this host's contributions to the same rows."""
    pctx = ctx.child("predict")
    request = pctx.recv(ctx.guest, REQUEST)
    if not isinstance(request, dict) or request.get("n_rows") != len(X):
        raise ProtocolError(f"'{REQUEST}' from '{ctx.guest}' asks for {request!r}, "
                            f"host has {len(X)} rows")
    pctx.send(ctx.guest, CONTRIBUTION, np.asarray(part.contribution(X), dtype=np.float64))
