"""Ids as PSI sees them: validated, de-duplicated and encoded to canonical, type-tagged bytes.

A row's encoding is, for each id column, ``tag || u32 length || payload`` with tag ``i``
(integer, decimal), ``s`` (str, UTF-8), ``b`` (bytes) or ``t`` (timestamp, ISO 8601). The tag
keeps int ``1`` and str ``"1"`` apart; the length prefix keeps composite keys unambiguous
(``("ab", "c")`` differs from ``("a", "bc")``). Whole floats count as integers, because pandas
turns integer columns into floats on the way through a CSV with gaps.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from vfl.errors import DataError

log = logging.getLogger(__name__)

Duplicates = Literal["error", "keep_first"]
OFF: dict[str, Any] = {"strip": False, "lower": False, "zero_pad": 0}
"""Id normalisation, none: ids match exactly as spelled (the default)."""
MAX_PAD = 64
EXAMPLES = 5
_LEN = struct.Struct(">I")
_OBJECT_KINDS = {"string", "integer", "bytes", "mixed-integer", "empty"}


def id_frame(ids: pd.DataFrame | pd.Series, where: str) -> pd.DataFrame:
    """The id column(s) as a DataFrame, checked: non-empty, no missing values."""
    frame = ids.to_frame() if isinstance(ids, pd.Series) else ids
    if not isinstance(frame, pd.DataFrame) or frame.shape[1] == 0:
        raise DataError(f"{where}: PSI needs a DataFrame with at least one id column")
    if len(frame) == 0:
        raise DataError(f"{where}: the id table {list(frame.columns)} is empty")
    missing = {str(c): int(n) for c, n in frame.isna().sum().items() if n}
    if missing:
        raise DataError(f"{where}: missing values in id column(s): {missing}")
    return frame


def normalization(value: Any, where: str) -> dict[str, Any]:
    """An id normalisation in its canonical form ``{strip, lower, zero_pad}`` (None: off),
    validated: it travels in the PSI handshake, where both parties must hold the same one."""
    if value is None:
        return dict(OFF)
    if not isinstance(value, dict) or set(value) - set(OFF):
        raise DataError(f"{where}: id normalisation must be a mapping of {sorted(OFF)}, got {value!r}")
    norm = {**OFF, **value}
    if not (isinstance(norm["strip"], bool) and isinstance(norm["lower"], bool)):
        raise DataError(f"{where}: id normalisation 'strip' and 'lower' must be true or false")
    pad = norm["zero_pad"]
    if isinstance(pad, bool) or not isinstance(pad, int) or not 0 <= pad <= MAX_PAD:
        raise DataError(f"{where}: id normalisation 'zero_pad' must be a width in [0, {MAX_PAD}]")
    return norm


def normalize(frame: pd.DataFrame, norm: dict[str, Any]) -> pd.DataFrame:
    """Text id columns spelled one way: surrounding whitespace removed (``strip``), lower case
    (``lower``), left-padded with zeros to ``zero_pad`` characters ('123' -> '00123' at 5).
    Integer columns are left as they are."""
    if norm == OFF:
        return frame
    out = frame.copy()
    for name in frame.columns:
        col = frame[name]
        if not pd.api.types.is_string_dtype(col):
            continue
        if norm["strip"]:
            col = col.str.strip()
        if norm["lower"]:
            col = col.str.lower()
        if norm["zero_pad"]:
            col = col.str.zfill(norm["zero_pad"])
        out[name] = col
    return out


def dedupe(frame: pd.DataFrame, duplicates: Duplicates, where: str) -> np.ndarray:
    """Positions of the rows PSI uses: all, or the first of each id with ``keep_first``.

    Same rule and message as the connectors' dataset spec (``duplicates: error|keep_first``).
    """
    if duplicates not in ("error", "keep_first"):
        raise DataError(f"{where}: duplicates must be 'error' or 'keep_first', got {duplicates!r}")
    duplicated = frame.duplicated(keep="first").to_numpy()
    if not duplicated.any():
        return np.arange(len(frame))
    n = int(duplicated.sum())
    examples = frame[duplicated].drop_duplicates().head(EXAMPLES)
    shown = [tuple(r) if len(r) > 1 else r[0] for r in examples.itertuples(index=False)]
    if duplicates == "error":
        raise DataError(f"{where}: {n} duplicate id row(s) in {list(frame.columns)}, e.g. "
                        f"{shown}; set duplicates='keep_first' to keep the first of each")
    log.warning("%s: dropped %d duplicate id rows (keep_first)", where, n)
    return np.flatnonzero(~duplicated)


Column = tuple[str, Any]
"""An id column ready for a worker: (kind, values); kind ``i``, ``t`` or ``o`` (per item)."""


def id_columns(frame: pd.DataFrame, where: str) -> list[Column]:
    """Each id column as a picklable (kind, values) pair that `encode_rows` understands."""
    out: list[Column] = []
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col):
            raise DataError(f"{where}: id column {name!r} is boolean; ids must be int or str")
        if pd.api.types.is_integer_dtype(col):
            if col.dtype.kind == "u" and int(col.max()) > np.iinfo(np.int64).max:
                out.append(("o", [int(v) for v in col]))
            else:
                out.append(("i", col.to_numpy(dtype=np.int64)))
        elif pd.api.types.is_float_dtype(col):
            values = col.to_numpy(dtype=np.float64)
            whole = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2**63)
            if not whole.all():
                raise DataError(f"{where}: id column {name!r} has non-integer floats, "
                                f"e.g. {values[~whole][:3].tolist()}")
            out.append(("i", values.astype(np.int64)))
        elif pd.api.types.is_datetime64_any_dtype(col):
            out.append(("t", [v.isoformat() for v in col]))
        else:
            kind = pd.api.types.infer_dtype(col, skipna=False)
            if kind not in _OBJECT_KINDS:
                raise DataError(f"{where}: id column {name!r} holds {kind} values; "
                                "ids must be int, str or bytes")
            out.append(("o", col.tolist()))
    return out


def take(columns: Sequence[Column], positions: np.ndarray) -> list[Column]:
    """The id columns restricted to `positions`, in that order (a chunk for a worker)."""
    return [(kind, values[positions] if isinstance(values, np.ndarray)
             else [values[i] for i in positions]) for kind, values in columns]


def _tagged(tag: bytes, payload: bytes) -> bytes:
    return tag + _LEN.pack(len(payload)) + payload


def _field(value: Any) -> bytes:
    if isinstance(value, str):
        return _tagged(b"s", value.encode("utf-8"))
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return _tagged(b"i", str(int(value)).encode("ascii"))
    if isinstance(value, bytes):
        return _tagged(b"b", value)
    raise DataError(f"id value of type {type(value).__name__} cannot be encoded")


def _encode_column(kind: str, values: Any) -> list[bytes]:
    if kind == "i":
        return [_tagged(b"i", str(v).encode("ascii")) for v in values.tolist()]
    if kind == "t":
        return [_tagged(b"t", v.encode("ascii")) for v in values]
    return [_field(v) for v in values]


def encode_rows(columns: Sequence[Column]) -> list[bytes]:
    """The canonical bytes of every row (see the module docstring)."""
    fields = [_encode_column(kind, values) for kind, values in columns]
    if len(fields) == 1:
        return fields[0]
    return [b"".join(parts) for parts in zip(*fields, strict=True)]


def canonical_order(columns: Sequence[Column]) -> np.ndarray:
    """Positions that sort rows by their canonical bytes: the same order on every party that
    holds the same ids, whatever the session's keys."""
    return np.argsort(np.array(encode_rows(columns), dtype=object), kind="stable")
