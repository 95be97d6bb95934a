"""A party's dataset: where it lives, which columns are ids, features and label, validated.

Validation happens once, at load, so the protocols downstream can trust their input: ids are
read as declared (never inferred from the values), present, not blank and unique; the label
is binary 0/1 (or mapped by ``positive_label``); features are numeric unless declared
categorical; every connector reads the same customers into the same values (blank text cells
are missing values, like NULL in SQL and null in Parquet); missing or infinite values are
counted per column and accepted or refused by policy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vfl.connectors.tables import is_text_table, read_table
from vfl.connectors.uri import parse_uri, redact_uri
from vfl.errors import DataError

log = logging.getLogger(__name__)

EXAMPLES = 5


class IdNormalization(BaseModel):
    """How PSI spells text ids before matching them (both parties must set the same)."""

    model_config = ConfigDict(extra="forbid")

    strip: bool = False
    lower: bool = False
    zero_pad: int = Field(0, ge=0, le=64, description="left-pad with zeros to this width; 0: off")


class DatasetSpec(BaseModel):
    """How a party config names a dataset (``datasets: {name: spec}`` in its YAML).

    ``id_column: id`` and ``id_columns: [a, b]`` both work; ``id_types`` declares an id
    column 'str' or 'int' (default: as stored, 'str' for CSV, whose types would be guessed).
    ``features: null`` means every column that is not an id or the label. ``na_values`` are
    the text values of feature columns that mean missing (default: the empty string).
    ``nan`` decides whether missing feature values are accepted (imputed later by
    preprocessing); ``inf`` whether infinite ones are. Ids and the label may never be missing.
    The label must hold 0 and 1, or two values one of which is ``positive_label``.
    ``id_normalize`` ({strip, lower, zero_pad}) is how PSI spells text ids before matching.
    """

    model_config = ConfigDict(extra="forbid")

    uri: str
    id_columns: list[str]
    id_types: dict[str, Literal["str", "int"]] = {}
    features: list[str] | None = None
    label: str | None = None
    positive_label: str | int | bool | None = None
    na_values: list[str] = [""]
    id_normalize: IdNormalization | None = None
    categorical: list[str] = []
    duplicates: Literal["error", "keep_first"] = "error"
    nan: Literal["error", "allow"] = "allow"
    inf: Literal["error", "allow"] = "error"

    @model_validator(mode="before")
    @classmethod
    def _id_column_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "id_column" in data:
            data = dict(data)
            if "id_columns" in data:
                raise ValueError("give id_column or id_columns, not both")
            data["id_columns"] = data.pop("id_column")
        return data

    @field_validator("id_columns", "features", "categorical", mode="before")
    @classmethod
    def _one_name_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("uri")
    @classmethod
    def _uri_parses(cls, value: str) -> str:
        try:
            parse_uri(value)
        except DataError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _columns_consistent(self) -> DatasetSpec:
        if not self.id_columns:
            raise ValueError("id_columns must name at least one column")
        stray_types = [c for c in self.id_types if c not in self.id_columns]
        if stray_types:
            raise ValueError(f"id_types names {stray_types}, which are not id columns")
        if self.positive_label is not None and self.label is None:
            raise ValueError("positive_label needs a label column")
        roles = [*self.id_columns, *([self.label] if self.label else [])]
        if len(set(roles)) != len(roles):
            raise ValueError(f"id and label columns overlap: {roles}")
        if self.features is not None:
            clash = [c for c in self.features if c in roles]
            if clash:
                raise ValueError(f"features {clash} are also id or label columns")
            if len(set(self.features)) != len(self.features):
                raise ValueError("features lists a column twice")
            stray = [c for c in self.categorical if c not in self.features]
            if stray:
                raise ValueError(f"categorical columns {stray} are not among the features")
        return self

    def __repr__(self) -> str:
        return f"DatasetSpec(uri={redact_uri(self.uri)!r}, id_columns={self.id_columns!r})"

    __str__ = __repr__


@dataclass
class Dataset:
    """A loaded, validated dataset; ``ids``, ``X`` and ``y`` share one RangeIndex.

    ``ids`` holds the id column(s), ``X`` the features (in the declared order), ``y`` the
    label (guest) or None (host). ``report`` has row counts and per-column NaN/inf counts.
    """

    name: str
    spec: DatasetSpec
    ids: pd.DataFrame
    X: pd.DataFrame
    y: pd.Series | None = None
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return len(self.ids)

    @property
    def id(self) -> pd.Series:
        """The single id column as a Series (DataError for composite ids)."""
        if self.ids.shape[1] != 1:
            raise DataError(f"dataset {self.name!r} has a composite id {list(self.ids.columns)}")
        return self.ids.iloc[:, 0]

    @property
    def frame(self) -> pd.DataFrame:
        """ids, features and label side by side."""
        parts = [self.ids, self.X] + ([self.y.to_frame()] if self.y is not None else [])
        return pd.concat(parts, axis=1)


def _where(name: str, spec: DatasetSpec) -> str:
    return f"dataset {name!r} ({redact_uri(spec.uri)})"


def _counts(mask: pd.DataFrame) -> dict[str, int]:
    sums = mask.sum()
    return {str(c): int(n) for c, n in sums.items() if n}


def load_dataset(spec: DatasetSpec | dict[str, Any], name: str = "dataset") -> Dataset:
    """Read a party's dataset as declared in its config and validate it.

    Parameters
    ----------
    spec : DatasetSpec or dict
        The dataset's declaration (a party config's ``datasets.<name>``).
    name : str, default "dataset"
        The dataset's name, for messages.

    Returns
    -------
    Dataset
        Ids, features and (on the guest) labels, checked against the declaration's rules.

    Raises
    ------
    DataError
        The data breaks a rule (ids, labels, blank cells, duplicates); every error names the
        dataset, URI and column.
    """
    if not isinstance(spec, DatasetSpec):
        spec = DatasetSpec.model_validate(spec)
    where = _where(name, spec)
    wanted = None
    if spec.features is not None:
        wanted = [*spec.id_columns, *spec.features, *([spec.label] if spec.label else [])]
    try:
        df = read_table(spec.uri, columns=wanted, types=id_types(spec))
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    return validate(df, spec, name)


def id_types(spec: DatasetSpec) -> dict[str, str]:
    """How each id column is read: as declared in ``id_types``, else 'str' for a CSV table
    (whose types Arrow would guess from the values: '00123' would become 123) and as stored
    for Parquet and SQL, which keep their declared column types."""
    undeclared = [c for c in spec.id_columns if c not in spec.id_types]
    text = bool(undeclared) and is_text_table(spec.uri)
    return {**{c: "str" for c in undeclared if text}, **spec.id_types}


def _rows(mask: pd.Series | np.ndarray, first_row: int = 1) -> str:
    """Row numbers for a message: 1 is the first data row (a CSV file's second line)."""
    rows = (np.flatnonzero(np.asarray(mask)) + first_row).tolist()
    more = f" and {len(rows) - EXAMPLES} more" if len(rows) > EXAMPLES else ""
    return f"row{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows[:EXAMPLES]))}{more}"


def check_ids(ids: pd.DataFrame, where: str, first_row: int = 1) -> None:
    """Every row has an id: no missing value, no blank text (DataError naming the column and
    the rows, counted from `first_row`)."""
    id_missing = _counts(ids.isna())
    if id_missing:
        raise DataError(f"{where}: missing values in id column(s): {id_missing}, at "
                        f"{_rows(ids.isna().any(axis=1), first_row)}; every row needs an id")
    for column in ids.columns:
        col = ids[column]
        if pd.api.types.is_string_dtype(col):
            blank = col.str.strip().eq("")
            if blank.any():
                raise DataError(f"{where}: blank id in column {column!r} at "
                                f"{_rows(blank, first_row)}; every row needs an id")


def id_hashes(ids: pd.Series | pd.DataFrame) -> np.ndarray:
    """A 64-bit hash of each row's id (uint64), the same in every process and run. Integer
    ids hash as int64 whatever width a file stores them in, so one id read from two part
    files of different widths hashes alike."""
    if isinstance(ids, pd.Series):
        ids = ids.astype(np.int64) if ids.dtype.kind in "iu" else ids
    else:
        wide = {c: np.int64 for c in ids.columns if ids[c].dtype.kind in "iu"}
        ids = ids.astype(wide) if wide else ids
    return pd.util.hash_pandas_object(ids, index=False).to_numpy()


def repeated_hashes(hashes: np.ndarray) -> np.ndarray:
    """The values that occur more than once in `hashes` (sorted; `hashes` is sorted in place,
    so a table's ids are held once, at 8 bytes a row). Only rows whose hash is among them can
    repeat an id: the caller compares those exactly."""
    hashes.sort()
    return np.unique(hashes[1:][hashes[1:] == hashes[:-1]])


def missing_as_nan(X: pd.DataFrame, na_values: list[str]) -> pd.DataFrame:
    """Text feature values listed in ``na_values`` (blank CSV cells: '') become NaN, so every
    connector reports and imputes them alike (Parquet and SQL hold them as null already)."""
    if not na_values:
        return X
    out = X.copy()
    for column in X.columns:
        col = X[column]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        blank = col.isin(na_values)
        if blank.any():
            out[column] = col.astype(object).mask(blank, np.nan)
    return out


def binary_label(y: pd.Series, spec: DatasetSpec, where: str) -> pd.Series:
    """The label as int64 0/1: its values must be 0 and 1 (or False/True), or two values one
    of which is ``positive_label`` (1; the other becomes 0)."""
    found = sorted(map(str, pd.unique(y)))
    shown = found[:EXAMPLES] + (["..."] if len(found) > EXAMPLES else [])
    if spec.positive_label is not None:
        positive = y == spec.positive_label
        if not positive.any() or len(found) > 2:
            raise DataError(f"{where}: label column {spec.label!r} must hold two values, one "
                            f"of them positive_label {spec.positive_label!r}; found {shown}")
        return positive.astype(np.int64).rename(spec.label)
    numbers = pd.to_numeric(y, errors="coerce") if not pd.api.types.is_bool_dtype(y) else y
    if pd.api.types.is_string_dtype(y) or numbers.isna().any() or not numbers.isin([0, 1]).all():
        raise DataError(f"{where}: label column {spec.label!r} must be binary 0/1, found values "
                        f"{shown}; declare which value is positive with positive_label: "
                        f"(e.g. positive_label: {found[-1]!r})")
    return numbers.astype(np.int64).rename(spec.label)


def validate(df: pd.DataFrame, spec: DatasetSpec, name: str = "dataset") -> Dataset:
    """Split ``df`` into ids, features and label and check them (see :class:`DatasetSpec`)."""
    where = _where(name, spec)
    columns = [str(c) for c in df.columns]
    missing_ids = [c for c in spec.id_columns if c not in columns]
    if missing_ids:
        raise DataError(f"{where}: missing id column(s) {missing_ids}; columns are {columns}")
    if spec.label is not None and spec.label not in columns:
        raise DataError(f"{where}: missing label column {spec.label!r}; columns are {columns}")
    roles = {*spec.id_columns, *([spec.label] if spec.label else [])}
    features = spec.features if spec.features is not None else [c for c in columns
                                                                if c not in roles]
    missing = [c for c in features if c not in columns]
    if missing:
        raise DataError(f"{where}: missing feature column(s) {missing}; columns are {columns}")
    stray = [c for c in spec.categorical if c not in features]
    if stray:
        raise DataError(f"{where}: categorical column(s) {stray} are not features")
    if df.empty:
        raise DataError(f"{where}: the table is empty")

    df = df.reset_index(drop=True)
    ids = df[spec.id_columns]
    check_ids(ids, where)
    report: dict[str, Any] = {"rows_read": len(df), "duplicates_dropped": 0}

    duplicated = ids.duplicated(keep="first")
    if duplicated.any():
        n = int(duplicated.sum())
        examples = ids[duplicated].drop_duplicates().head(EXAMPLES)
        shown = [tuple(r) if len(r) > 1 else r[0] for r in examples.itertuples(index=False)]
        if spec.duplicates == "error":
            raise DataError(f"{where}: {n} duplicate id row(s) in {spec.id_columns}, e.g. "
                            f"{shown}; set duplicates: keep_first to keep the first of each")
        log.warning("%s: dropped %d duplicate id rows (keep_first)", where, n)
        df = df[~duplicated].reset_index(drop=True)
        ids = df[spec.id_columns]
        report["duplicates_dropped"] = n

    X = missing_as_nan(df[features], spec.na_values)
    numeric = [c for c in features if c not in spec.categorical]
    bad = [c for c in numeric if not (pd.api.types.is_numeric_dtype(X[c])
                                      and not pd.api.types.is_complex_dtype(X[c]))]
    if bad:
        examples_by = {c: X[c].dropna().astype(str).head(3).tolist() for c in bad}
        raise DataError(f"{where}: non-numeric feature column(s) {examples_by}; declare them "
                        "in categorical: or drop them from features:")

    values = X[numeric].astype(np.float64) if numeric else pd.DataFrame(index=X.index)
    nans = _counts(X.isna())
    infs = _counts(pd.DataFrame(np.isinf(values.to_numpy()), columns=values.columns))
    report["nan_counts"], report["inf_counts"] = nans, infs
    if nans and spec.nan == "error":
        raise DataError(f"{where}: missing values per feature column {nans} (nan: error)")
    if infs and spec.inf == "error":
        raise DataError(f"{where}: infinite values per feature column {infs} (inf: error)")

    y = None
    if spec.label is not None:
        y = df[spec.label]
        if y.isna().any():
            raise DataError(f"{where}: label column {spec.label!r} has "
                            f"{int(y.isna().sum())} missing value(s), at {_rows(y.isna())}")
        y = binary_label(y, spec, where)
    log.info("%s: %d rows, %d features%s", where, len(df), len(features),
             f", NaN per column {nans}" if nans else "")
    return Dataset(name=name, spec=spec, ids=ids.reset_index(drop=True), X=X, y=y,
                   report=report)
