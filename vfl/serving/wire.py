"""Serving messages <-> numpy/pandas, validated on arrival (never pickle).

Ids travel as one typed list (int64 or strings, never mixed); a host's partial results as a
float64 byte block of ``n_found x width`` plus one found-byte per asked id. Every length,
width and value is checked against the request before anyone uses it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from vfl.errors import ProtocolError
from vfl.serving.features import INT64_MAX, INT64_MIN
from vfl.serving.proto import serving_pb2 as spb
from vfl.serving.scoring import Partials

MAX_ID_CHARS = 256
MAX_WIDTH = 4096


def ids_to_pb(ids: pd.Series) -> spb.Ids:
    values = ids.to_numpy()
    if values.dtype.kind in "iu":
        return spb.Ids(ints=values.astype(np.int64).tolist())
    if len(values) and all(isinstance(v, str) for v in values):
        return spb.Ids(strings=[str(v) for v in values])
    if len(values) and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        return spb.Ids(ints=[int(v) for v in values])
    if not len(values):
        return spb.Ids()
    raise ProtocolError("ids must be all integers or all strings")


def ids_from_pb(msg: spb.Ids, limit: int, sender: str) -> pd.Series:
    if len(msg.ints) and len(msg.strings):
        raise ProtocolError(f"ids from '{sender}' mix integers and strings")
    n = len(msg.ints) or len(msg.strings)
    if n > limit:
        raise ProtocolError(f"{n} ids from '{sender}' exceed the limit of {limit} per request")
    if len(msg.ints):
        return pd.Series(np.fromiter(msg.ints, dtype=np.int64, count=n))
    if any(len(s) > MAX_ID_CHARS for s in msg.strings):
        raise ProtocolError(f"an id from '{sender}' is longer than {MAX_ID_CHARS} characters")
    return pd.Series(list(msg.strings), dtype=object)


def ids_from_json(values: object, limit: int) -> pd.Series:
    """Ids from an application's JSON body: a non-empty list of integers or of strings."""
    if not isinstance(values, list) or not values:
        raise ProtocolError("'ids' must be a non-empty list")
    if len(values) > limit:
        raise ProtocolError(f"{len(values)} ids exceed the limit of {limit} per request")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if not all(INT64_MIN <= v <= INT64_MAX for v in values):
            raise ProtocolError("integer 'ids' must fit in 64 bits (-2**63 .. 2**63-1)")
        return pd.Series(np.asarray(values, dtype=np.int64))
    if all(isinstance(v, str) and len(v) <= MAX_ID_CHARS for v in values):
        return pd.Series(values, dtype=object)
    raise ProtocolError(f"'ids' must be all integers or all strings (of at most {MAX_ID_CHARS} characters)")


def features_from_json(value: object, n_ids: int) -> pd.DataFrame | None:
    """Optional guest features: ``{"column": [one value per id]}`` or a list of row objects."""
    if value is None:
        return None
    if isinstance(value, list):
        if len(value) != n_ids or not all(isinstance(r, dict) for r in value):
            raise ProtocolError(f"'features' as a list needs one object per id ({n_ids})")
        frame = pd.DataFrame.from_records(value)
    elif isinstance(value, dict):
        bad = [k for k, v in value.items() if not isinstance(v, list) or len(v) != n_ids]
        if bad:
            raise ProtocolError(f"'features' column(s) {bad} must be lists with one value per id ({n_ids})")
        frame = pd.DataFrame(value)
    else:
        raise ProtocolError("'features' must be an object of columns or a list of rows")
    bad_cells = [c for c in frame.columns
                 if not all(v is None or isinstance(v, int | float | str | bool) for v in frame[c])]
    if bad_cells:
        raise ProtocolError(f"'features' column(s) {bad_cells} hold nested values")
    return frame


def partials_to_pb(answer: Partials, version: str) -> spb.PartialsReply:
    values = np.ascontiguousarray(answer.values, dtype="<f8")
    width = values.shape[1] if values.ndim == 2 and len(values) else 0
    return spb.PartialsReply(version=version, width=width, values=values.tobytes(),
                             found=answer.found.astype(np.uint8).tobytes())


def partials_from_pb(reply: spb.PartialsReply, n_ids: int, sender: str) -> Partials:
    found_bytes = np.frombuffer(reply.found, dtype=np.uint8)
    if found_bytes.shape != (n_ids,) or (found_bytes > 1).any():
        raise ProtocolError(f"partials from '{sender}': 'found' must be {n_ids} bytes of 0/1")
    found = found_bytes.astype(bool)
    n_found = int(found.sum())
    if reply.width > MAX_WIDTH or (n_found and reply.width == 0):
        raise ProtocolError(f"partials from '{sender}': width {reply.width} is invalid")
    if len(reply.values) != 8 * n_found * reply.width:
        raise ProtocolError(f"partials from '{sender}': {len(reply.values)} bytes of values for "
                            f"{n_found} found ids of width {reply.width}")
    values = np.frombuffer(reply.values, dtype="<f8").reshape(n_found, max(reply.width, 1) if n_found else 0)
    if not np.isfinite(values).all():
        raise ProtocolError(f"partials from '{sender}': values must be finite")
    return Partials(values.astype(np.float64), found)


def parse_json(text: str | bytes) -> Any:
    """A JSON request body or field; ProtocolError if it is not JSON or nested too deeply."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"body is not valid JSON: {str(exc)[:120]}") from None
    except RecursionError:
        raise ProtocolError("body is nested too deeply") from None
