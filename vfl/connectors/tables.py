"""Read and write tables by URI: the one entry point every party uses for its data.

Any failure of a driver, a network or a file becomes a :class:`DataError` that names the URI
with its password removed; driver messages are scrubbed of secrets before they are shown.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any, Literal, Protocol

import pandas as pd
import requests

from vfl.connectors.files import (
    ARROW_TYPES,
    FileTableWriter,
    count_file_rows,
    file_format,
    iter_file_table,
    part_files,
    read_file_table,
)
from vfl.connectors.filesystems import filesystem_for
from vfl.connectors.sql import (
    SqlTableWriter,
    count_sql_rows,
    iter_sql_table,
    read_sql_table,
    sql_parts,
)
from vfl.connectors.uri import Location, parse_uri, scrub, with_query
from vfl.errors import DataError

log = logging.getLogger(__name__)

Mode = Literal["append", "replace"]


@contextlib.contextmanager
def _errors(loc: Location, action: str) -> Iterator[None]:
    """Turn any failure into a DataError naming the redacted URI and never a secret."""
    try:
        yield
    except DataError as exc:
        message = scrub(str(exc), loc.uri)
        if message == str(exc):
            raise
        raise DataError(message) from None
    except requests.exceptions.ConnectionError:
        raise DataError(f"{loc.redacted}: cannot {action}: the server is unreachable") from None
    except Exception as exc:  # drivers raise anything: sqlalchemy, pymysql, hdfs, requests
        original = getattr(exc, "orig", None) or exc  # SQLAlchemy: skip statement and params
        detail = scrub(f"{type(original).__name__}: {original}", loc.uri)
        raise DataError(f"{loc.redacted}: cannot {action}: {detail}") from None


def _columns(columns: list[str] | None) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str):
        return [columns]
    return [str(c) for c in columns]


def _types(types: dict[str, str] | None) -> dict[str, str]:
    unknown = {c: t for c, t in (types or {}).items() if t not in ARROW_TYPES}
    if unknown:
        raise DataError(f"column types {unknown} are not among {sorted(ARROW_TYPES)}")
    return dict(types or {})


def as_declared(frame: pd.DataFrame, types: dict[str, str], where: str) -> pd.DataFrame:
    """Columns of ``types`` converted to their declared type ('str' or 'int') whatever the
    store holds: a SQL or Parquet integer id declared 'str' becomes '123', never '123.0'.
    Missing values stay missing; a value that is not an integer fails for 'int'."""
    for name, kind in types.items():
        if name not in frame.columns:
            continue
        col = frame[name]
        if kind == "str" and not pd.api.types.is_string_dtype(col):
            frame[name] = col.map(_as_text, na_action="ignore").astype(object)
        elif kind == "int" and not pd.api.types.is_integer_dtype(col):
            numbers = pd.to_numeric(col, errors="coerce")
            bad = col.notna() & (numbers.isna() | (numbers != numbers.round()))
            if bad.any():
                raise DataError(f"{where}: column {name!r} is declared int but holds "
                                f"{col[bad].head(3).tolist()}")
            frame[name] = numbers if numbers.isna().any() else numbers.astype("int64")
    return frame


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def iter_table(uri: str | os.PathLike[str], chunk_rows: int = 100_000,
               columns: list[str] | None = None,
               types: dict[str, str] | None = None) -> Iterator[pd.DataFrame]:
    """Yield the table as DataFrames of ``chunk_rows`` rows (the last may be shorter).

    Memory stays bounded by the chunk (plus one CSV block or Parquet row group). Chunk indexes
    continue each other, so ``pd.concat(iter_table(uri))`` equals ``read_table(uri)``.
    ``types`` as in :func:`read_table`.
    """
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise DataError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    loc = parse_uri(uri)
    columns, declared = _columns(columns), _types(types)
    log.debug("streaming %s in chunks of %d rows", loc.redacted, chunk_rows)
    with _errors(loc, "read"):
        chunks = (iter_sql_table(loc, chunk_rows, columns) if loc.kind == "sql"
                  else iter_file_table(filesystem_for(loc), loc, chunk_rows, columns, declared))
        for chunk in chunks:
            yield as_declared(chunk, declared, loc.redacted)


def count_rows(uri: str | os.PathLike[str]) -> int | None:
    """The table's row count when the source tells it cheaply (Parquet footers, a SQL table's
    ``COUNT(*)``), else None (CSV, ``?query=``): what progress needs for an ETA."""
    loc = parse_uri(uri)
    with _errors(loc, "count the rows of"):
        if loc.kind == "sql":
            return count_sql_rows(loc)
        return count_file_rows(filesystem_for(loc), loc)


def read_table(uri: str | os.PathLike[str], columns: list[str] | None = None,
               types: dict[str, str] | None = None) -> pd.DataFrame:
    """Read a whole table (or only ``columns``, in that order) into one DataFrame.

    Parameters
    ----------
    uri : str or PathLike
        A file or folder (CSV, Parquet; local or ``hdfs://``) or a SQLAlchemy URL with
        ``?table=`` or ``?query=`` (docs/connectors.md).
    columns : list of str or None, default None
        The columns to read, in this order; None reads all.
    types : dict of str to str or None, default None
        Columns read as declared, 'str' or 'int', never inferred from the values (a CSV id
        '00123' stays '00123' as 'str').

    Returns
    -------
    pandas.DataFrame
        The table.

    Raises
    ------
    DataError
        The source cannot be read, a column is missing or a value does not fit its declared
        type; the message names the (redacted) URI and the column.
    """
    loc = parse_uri(uri)
    columns, declared = _columns(columns), _types(types)
    log.debug("reading %s", loc.redacted)
    with _errors(loc, "read"):
        if loc.kind == "sql":
            frame = read_sql_table(loc, columns)
        else:
            frame = read_file_table(filesystem_for(loc), loc, columns, declared)
        return as_declared(frame, declared, loc.redacted)


def table_parts(uri: str | os.PathLike[str]) -> list[str] | None:
    """The table as URIs of its partitions, in the order `read_table` reads them.

    Each URI reads one partition of the table (`read_table(part)`), and the partitions read
    one after the other give the table's rows in its order: each part file of a local or
    HDFS file table (one file: one part), or each range of a SQL table's
    ``?partition_column=`` (``?partitions=`` of them). None for a table that cannot be
    split (a SQL table without a partition column, a ``?query=``), which is read whole.

    Raises
    ------
    DataError
        The table cannot be listed, or its partition column is missing or not an integer
        column; the message names the (redacted) URI.
    """
    loc = parse_uri(uri)
    if loc.kind == "sql":
        if "partition_column" not in loc.params:
            return None
        with _errors(loc, "split"):
            return sql_parts(loc)
    with _errors(loc, "list the files of"):
        files, fmt = part_files(filesystem_for(loc), loc)
    if loc.kind == "hdfs":
        return [with_query(loc.uri, {"format": fmt}, path=path) for path in files]
    return [f"{path}?format={fmt}" for path in files]


def is_text_table(uri: str | os.PathLike[str]) -> bool:
    """Whether the table is stored as text (CSV), where column types would be guessed."""
    loc = parse_uri(uri)
    if loc.kind == "sql":
        return False
    with _errors(loc, "read"):
        return file_format(filesystem_for(loc), loc) == "csv"


class _Writer(Protocol):
    def write(self, df: pd.DataFrame) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class TableWriter:
    """Streams DataFrames into one sink; use as a context manager.

    ``with open_writer("scores.parquet") as w: w.write(chunk)`` for batch scoring: the sink
    is replaced (or appended to) once, then every chunk is added to it.
    """

    def __init__(self, uri: str | os.PathLike[str], mode: Mode = "replace") -> None:
        if mode not in ("append", "replace"):
            raise DataError(f"write mode must be 'append' or 'replace', got {mode!r}")
        self.loc = parse_uri(uri)
        self.rows = 0
        with _errors(self.loc, "open for writing"):
            self._sink: _Writer = (SqlTableWriter(self.loc, mode) if self.loc.kind == "sql"
                                   else FileTableWriter(filesystem_for(self.loc), self.loc, mode))

    def write(self, df: pd.DataFrame) -> None:
        with _errors(self.loc, "write"):
            self._sink.write(df)
        self.rows += len(df)

    def close(self) -> None:
        with _errors(self.loc, "finish writing"):
            self._sink.close()
        log.debug("wrote %d rows to %s", self.rows, self.loc.redacted)

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            with contextlib.suppress(Exception):
                self._sink.abort()


def open_writer(uri: str | os.PathLike[str], mode: Mode = "replace") -> TableWriter:
    """A :class:`TableWriter` for chunked writes (batch scores, aligned ids)."""
    return TableWriter(uri, mode)


def write_table(df: pd.DataFrame, uri: str | os.PathLike[str], mode: Mode = "replace") -> None:
    """Write ``df`` (its index is not written) to ``uri``, replacing or appending.

    Parameters
    ----------
    df : pandas.DataFrame
        The rows to write.
    uri : str or PathLike
        Where, as in `read_table`.
    mode : {"replace", "append"}, default "replace"
        Replace the table or add to it.

    Raises
    ------
    DataError
        The sink cannot be written; the message names the (redacted) URI.
    """
    with open_writer(uri, mode) as writer:
        writer.write(df)
