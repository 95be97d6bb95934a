"""Federated WOE/IV binning: screen a host's features by their information value on the
guest's labels, without the host seeing a label or the guest seeing a feature value.

    guest: y in {0,1}; sends pk and [[y_i]] for the aligned rows        ("pubkey", "enc_y")
    host:  bins each column; per bin b sums [[e_b]] = prod_{i in b} [[y_i]] (additions only),
           re-randomizes, sends them with the plain bin counts n_b under anonymous
           column names x0, x1, ...                                      ("bins")
    guest: decrypts e_b; with E = sum y, N = n - E (FATE's convention, event = y = 1):
           er_b = e_b / E, nr_b = (n_b - e_b) / N        (both + 0.5 when e_b or n_b - e_b is 0)
           WOE_b = ln(er_b / nr_b),  IV = sum_b (er_b - nr_b) WOE_b
           optionally returns IV per anonymous column                    ("iv")
    host:  maps the IVs back to its real columns and selects features.

What each side learns (honest-but-curious) is in docs/preprocessing.md: the guest learns, per
anonymous host column, the bin sizes and the label counts per bin; the host learns nothing
about the labels unless the guest shares IV (one rounded number per column).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from vfl.crypto import EncryptedArray, PaillierPublicKey, generate_keypair
from vfl.errors import DataError, ProtocolError
from vfl.parties.context import Context

ADJUSTMENT = 0.5  # FATE's adjustment_factor for a bin without events or non-events
MAX_BINS = 1000  # per column, so a malformed message cannot make the guest decrypt forever
MAX_COLUMNS = 100_000
MISSING = "missing"


# ---------------------------------------------------------------------------------------------
# the local parts: binning (host) and the WOE/IV formula (guest); both also used centrally


def bin_column(x: pd.Series, bins: int = 10, method: str = "quantile") -> tuple[np.ndarray, list[str]]:
    """Bin codes 0..k-1 per row and k labels. Missing values get their own last bin.

    Numbers: `quantile` (edges at the quantiles) or `uniform` (equal width) bins, right-open
    `[lo, hi)`; a column with at most `bins` distinct values gets one bin per value. Strings:
    one bin per category.
    """
    if method not in ("quantile", "uniform"):
        raise DataError(f"binning method for column '{x.name}' must be quantile or uniform, got {method!r}")
    if bins < 2:
        raise DataError(f"column '{x.name}': bins must be >= 2, got {bins}")
    isna = x.isna().to_numpy()
    codes = np.full(len(x), -1, dtype=np.int64)
    labels: list[str]
    if not pd.api.types.is_numeric_dtype(x.dtype) or pd.api.types.is_bool_dtype(x.dtype):
        cats = sorted({str(v) for v in x[~isna]})
        lookup = {c: i for i, c in enumerate(cats)}
        codes[~isna] = [lookup[str(v)] for v in x[~isna]]
        labels = cats
    else:
        values = x.to_numpy(dtype=np.float64, na_value=np.nan)[~isna]
        if not np.isfinite(values).all():
            raise DataError(f"column '{x.name}' has infinite values")
        distinct = np.unique(values)
        if len(distinct) <= bins:
            codes[~isna] = np.searchsorted(distinct, values)
            labels = [f"={v:g}" for v in distinct]
        else:
            if method == "quantile":
                edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
            else:
                edges = np.linspace(values.min(), values.max(), bins + 1)
            inner = edges[1:-1]
            codes[~isna] = np.searchsorted(inner, values, side="right")
            bounds = [-np.inf, *inner, np.inf]
            labels = [f"[{lo:g}, {hi:g})" for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    if isna.any():
        codes[isna] = len(labels)
        labels = [*labels, MISSING]
    return codes, labels


def woe_iv(counts: np.ndarray, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin WOE and IV contributions from integer bin counts and event (y=1) counts."""
    counts = np.asarray(counts, dtype=np.int64)
    events = np.asarray(events, dtype=np.int64)
    non_events = counts - events
    total_e, total_n = int(events.sum()), int(non_events.sum())
    if total_e == 0 or total_n == 0:
        raise DataError("WOE needs both classes among the labels (events and non-events)")
    adjust = (events == 0) | (non_events == 0)
    er = (events + np.where(adjust, ADJUSTMENT, 0.0)) / total_e
    nr = (non_events + np.where(adjust, ADJUSTMENT, 0.0)) / total_n
    woe = np.log(er / nr)
    return woe, (er - nr) * woe


def woe_table(column: str, counts: np.ndarray, events: np.ndarray,
              labels: list[str] | None = None) -> pd.DataFrame:
    woe, iv = woe_iv(counts, events)
    return pd.DataFrame({
        "column": column,
        "bin": labels if labels is not None else [f"bin_{i}" for i in range(len(counts))],
        "count": np.asarray(counts, dtype=np.int64),
        "events": np.asarray(events, dtype=np.int64),
        "non_events": np.asarray(counts, dtype=np.int64) - np.asarray(events, dtype=np.int64),
        "woe": woe,
        "iv": iv,
    })


@dataclass
class WoeReport:
    """WOE/IV of a set of columns.

    Parameters
    ----------
    table : pandas.DataFrame
        WOE per bin: one row per column and bin.
    iv : pandas.Series
        IV per column.
    """

    table: pd.DataFrame
    iv: pd.Series

    @classmethod
    def from_tables(cls, tables: list[pd.DataFrame]) -> WoeReport:
        """The report of per-column tables (`woe_table`), IV summed per column."""
        table = pd.concat(tables, ignore_index=True)
        iv = table.groupby("column", sort=False)["iv"].sum().rename("iv")
        return cls(table, iv)


def centralized(X: pd.DataFrame, y: Any, *, bins: int = 10, method: str = "quantile") -> WoeReport:
    """The same WOE/IV computed where X and y sit together: the reference for the protocol."""
    labels01 = _labels(y)
    tables = []
    for col in X.columns:
        codes, names = bin_column(X[col], bins, method)
        counts = np.bincount(codes, minlength=len(names))
        events = np.bincount(codes, weights=labels01, minlength=len(names)).astype(np.int64)
        tables.append(woe_table(str(col), counts, events, names))
    return WoeReport.from_tables(tables)


def _labels(y: Any) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1 or len(arr) == 0:
        raise DataError(f"labels must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.isin(arr, [0, 1]).all():
        raise DataError(f"labels must be 0/1 for WOE, got values {np.unique(arr)[:5].tolist()}")
    return arr.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# the protocol


def guest(ctx: Context, y: Any, *, key_bits: int = 2048, share_iv: bool = True,
          iv_decimals: int | None = 2) -> dict[str, WoeReport]:
    """WOE/IV of every host's (anonymous) columns on this guest's labels, per host.

    With `share_iv` each host gets its columns' IV, rounded to `iv_decimals` (None: exact):
    enough to select features, too coarse for a host that crafts a column around one row to
    read that row's label off the IV on a table of realistic size (see docs).
    """
    labels = _labels(y)
    pub, priv = generate_keypair(key_bits)
    ctx.broadcast("pubkey", pub.to_wire())
    ctx.broadcast("enc_y", pub.encrypt(labels, executor=ctx.executor).to_wire())
    reports = {}
    for h in ctx.hosts:
        msg = ctx.recv(h, "bins")
        columns, counts, enc = _parse_bins(msg, len(labels), pub, h)
        events = np.array([int(v) for v in priv.decrypt_encoded(enc, ctx.executor).ints.flat],
                          dtype=np.int64)
        tables, start = [], 0
        for col, cnt in zip(columns, counts, strict=True):
            ev = events[start : start + len(cnt)]
            start += len(cnt)
            if (ev < 0).any() or (ev > cnt).any():
                raise ProtocolError(f"'bins' from host '{h}': column '{col}' has event counts "
                                    f"outside [0, bin count] after decryption")
            tables.append(woe_table(col, cnt, ev))
        reports[h] = WoeReport.from_tables(tables)
        ctx.log.info("WOE/IV for %d columns of host %s", len(columns), h)
        ivs = reports[h].iv if iv_decimals is None else reports[h].iv.round(iv_decimals)
        shared = {c: float(v) for c, v in ivs.items()} if share_iv else None
        ctx.send(h, "iv", shared)
    return reports


@dataclass
class HostWoe:
    """What the host keeps: its anonymization, its bins, and the IVs if the guest shared them."""

    columns: dict[str, str]  # anonymous name -> real column
    bins: dict[str, list[str]]  # real column -> bin labels
    iv: pd.Series | None = field(default=None)  # real column -> IV

    def select(self, min_iv: float = 0.02) -> list[str]:
        """Real columns whose IV reaches `min_iv` (0.02 is the usual 'weak' threshold)."""
        if self.iv is None:
            raise DataError("the guest did not share IV values (share_iv=False)")
        return [c for c, v in self.iv.items() if v >= min_iv]


def host(ctx: Context, X: pd.DataFrame, *, bins: int = 10,
         method: Literal["quantile", "uniform"] = "quantile") -> HostWoe:
    """Bin own columns, sum the guest's encrypted labels per bin, learn IV if shared."""
    pub = PaillierPublicKey.from_wire(ctx.recv(ctx.guest, "pubkey"))
    enc_y = EncryptedArray.from_wire(ctx.recv(ctx.guest, "enc_y"), pub)
    if enc_y.shape != (len(X),) or enc_y.scale_bits != 0 or enc_y.bound > 1:
        raise ProtocolError(
            f"'enc_y' from guest '{ctx.guest}': expected {len(X)} encrypted 0/1 labels for the "
            f"aligned rows, got shape {enc_y.shape}, scale {enc_y.scale_bits}, bound {enc_y.bound}"
        )
    anon = {f"x{i}": str(c) for i, c in enumerate(X.columns)}
    labels, counts, sums = {}, [], []
    for i, col in enumerate(anon.values()):
        codes, labels[col] = bin_column(X.iloc[:, i], bins, method)
        counts.append(np.bincount(codes, minlength=len(labels[col])).astype(np.int64))
        sums += [enc_y[codes == b].sum() for b in range(len(labels[col]))]
    flat = np.empty(len(sums), dtype=object)
    flat[:] = [s.ciphertexts.item() for s in sums]
    # Fresh randomness: a product of the guest's own ciphertexts would tell it the bin's rows.
    events = EncryptedArray(pub, flat, 0, len(X)).rerandomize(ctx.executor)
    ctx.send(ctx.guest, "bins", {"columns": list(anon), "counts": counts,
                                 "events": events.to_wire(), "n_rows": len(X)})
    result = HostWoe(anon, labels)
    iv = ctx.recv(ctx.guest, "iv")
    if iv is not None:
        if not isinstance(iv, dict) or set(iv) != set(anon) or not all(
                isinstance(v, float) and math.isfinite(v) for v in iv.values()):
            raise ProtocolError(f"'iv' from guest '{ctx.guest}': expected a finite float per column {list(anon)}")
        result.iv = pd.Series({anon[k]: iv[k] for k in anon}, name="iv")
    return result


def _parse_bins(msg: Any, n_rows: int, pub: PaillierPublicKey,
                h: str) -> tuple[list[str], list[np.ndarray], EncryptedArray]:
    where = f"'bins' from host '{h}'"
    if not isinstance(msg, dict) or set(msg) != {"columns", "counts", "events", "n_rows"}:
        raise ProtocolError(f"{where}: expected fields columns, counts, events, n_rows")
    columns, counts = msg["columns"], msg["counts"]
    if msg["n_rows"] != n_rows:
        raise ProtocolError(f"{where}: binned {msg['n_rows']} rows, the guest has {n_rows} aligned rows")
    if (not isinstance(columns, list) or not isinstance(counts, list) or len(columns) != len(counts)
            or not 0 < len(columns) <= MAX_COLUMNS or len(set(columns)) != len(columns)
            or not all(isinstance(c, str) for c in columns)):
        raise ProtocolError(f"{where}: 'columns' and 'counts' must be lists of equal length "
                            f"(1..{MAX_COLUMNS}) with distinct string names")
    for col, cnt in zip(columns, counts, strict=True):
        if (not isinstance(cnt, np.ndarray) or cnt.ndim != 1 or cnt.dtype.kind not in "iu"
                or not 0 < len(cnt) <= MAX_BINS or (cnt < 0).any() or int(cnt.sum()) != n_rows):
            raise ProtocolError(f"{where}: counts of column '{col}' must be 1..{MAX_BINS} "
                                f"non-negative integers summing to {n_rows}")
    enc = EncryptedArray.from_wire(msg["events"], pub)
    total = sum(len(c) for c in counts)
    if enc.shape != (total,) or enc.scale_bits != 0:
        raise ProtocolError(f"{where}: 'events' must be {total} integer ciphertexts, got shape {enc.shape}")
    return columns, [c.astype(np.int64) for c in counts], enc
