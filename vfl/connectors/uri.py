"""Parse table URIs and redact their secrets.

A URI names where a table lives and how to read it. Three kinds exist:

- files: ``data/x.csv``, ``file:///abs/x.parquet``, a directory of part files, ``?format=csv``;
- HDFS through WebHDFS: ``hdfs://namenode:9870/path/x.csv?user=alice``;
- SQL, any SQLAlchemy URL plus ``?table=NAME`` or ``?query=SELECT...`` (URL-encoded); a
  table may name an integer ``partition_column=`` (read in its order), split into
  ``partitions=`` ranges, each range a URI of its own (``partition_from=``/``partition_below=``).

Secrets (the password of the URL, query parameters such as ``password`` or ``token``) must
never reach a log line or an error message, so every message built here uses
:func:`redact_uri`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from vfl.errors import DataError

Format = Literal["csv", "parquet"]
Kind = Literal["file", "hdfs", "sql"]

EXTENSIONS: dict[str, Format] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
SECRET_PARAMS = frozenset({"password", "passwd", "pwd", "token", "secret", "delegation", "key"})
# Query parameters that belong to vfl, never to the database driver.
SQL_OWN_PARAMS = ("table", "query", "schema", "partition_column", "partitions",
                  "partition_from", "partition_below")
# The integer options of a partitioned SQL table, and the least value each may take.
SQL_INT_PARAMS = {"partitions": 1, "partition_from": None, "partition_below": None}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_REDACTED = "***"


@dataclass(frozen=True)
class Location:
    """A parsed URI: what kind of store, where in it, and the options vfl understood."""

    uri: str
    kind: Kind
    path: str = ""  # file or HDFS path; SQL: the SQLAlchemy URL without vfl's own params
    format: Format | None = None  # from ?format= or the extension; None for SQL
    host: str = ""  # HDFS namenode host:port
    params: dict[str, str] = field(default_factory=dict)  # vfl options (table, query, user)

    @property
    def redacted(self) -> str:
        return redact_uri(self.uri)


def redact_uri(uri: str) -> str:
    """Return ``uri`` with the password and secret query parameters replaced by ``***``.

    Works for anything, even strings that are not valid URIs, so it is safe in error paths.
    """
    match = _SCHEME.match(uri)
    if not match:
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:
        return match.group(0) + _REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + _REDACTED
        netloc = f"{userinfo}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_PARAMS for k, _ in pairs):
            query = urlencode(
                [(k, _REDACTED if k.lower() in SECRET_PARAMS else v) for k, v in pairs],
                safe="*",
            )
    if (netloc, query) == (parts.netloc, parts.query):
        return uri
    return _unsplit(parts.scheme, netloc, parts.path, query, parts.fragment)


def _unsplit(scheme: str, netloc: str, path: str, query: str, fragment: str = "") -> str:
    """Like urlunsplit, but keeps ``scheme://`` when the host is empty (``sqlite:///x.db``)."""
    return (f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")
            + (f"#{fragment}" if fragment else ""))


def secrets_of(uri: str) -> list[str]:
    """The secret strings inside ``uri``: scrubbed from any message that might echo them."""
    if not _SCHEME.match(uri):
        return []
    try:
        parts = urlsplit(uri)
    except ValueError:
        return []
    found = []
    if parts.password:
        found += [parts.password, unquote(parts.password), quote(unquote(parts.password), safe="")]
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k.lower() in SECRET_PARAMS and v:
            found.append(v)
    return sorted({s for s in found if s}, key=len, reverse=True)


def scrub(message: str, uri: str) -> str:
    """Remove every secret of ``uri`` from ``message`` (driver errors sometimes echo them)."""
    for secret in secrets_of(uri):
        message = message.replace(secret, _REDACTED)
    return message


def with_query(uri: str, updates: dict[str, str | None], path: str | None = None) -> str:
    """``uri`` with the query parameters of ``updates`` set (removed where None) and, when
    given, another ``path``; every other part (user, password, host, options) kept as is."""
    parts = urlsplit(uri)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in updates]
    pairs += [(k, v) for k, v in updates.items() if v is not None]
    return _unsplit(parts.scheme, parts.netloc, parts.path if path is None else quote(path),
                    urlencode(pairs), parts.fragment)


def format_of_name(name: str) -> Format | None:
    """The table format a file name implies by its extension, if any."""
    return EXTENSIONS.get(os.path.splitext(name)[1].lower())


def parse_uri(uri: str | os.PathLike[str]) -> Location:
    """Split ``uri`` into a :class:`Location`; raise DataError naming the (redacted) URI.

    A ``pathlib.Path`` is a local file path.
    """
    if isinstance(uri, os.PathLike):
        uri = os.fspath(uri)
    if not isinstance(uri, str) or not uri.strip():
        raise DataError(f"a table URI must be a non-empty string, got {uri!r}")
    match = _SCHEME.match(uri)
    scheme = match.group(1).lower() if match else ""
    if not match or scheme == "file":
        return _parse_file(uri)
    if scheme in ("hdfs", "webhdfs"):
        return _parse_hdfs(uri)
    return _parse_sql(uri)


def _own_format(value: str | None, uri: str) -> Format | None:
    if value is None:
        return None
    fmt = value.lower()
    if fmt in ("pq",):
        fmt = "parquet"
    if fmt not in ("csv", "parquet"):
        raise DataError(f"{redact_uri(uri)}: unknown format {value!r} (use csv or parquet)")
    return fmt  # type: ignore[return-value]


def _parse_file(uri: str) -> Location:
    if uri.lower().startswith("file://"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise DataError(f"{uri}: file URIs must be local (file:///path), not on host {parts.netloc!r}")
        path = unquote(parts.path)
        params = dict(parse_qsl(parts.query))
    else:
        path, _, query = uri.partition("?")
        params = dict(parse_qsl(query))
    path = os.path.abspath(os.path.expanduser(path))
    fmt = _own_format(params.pop("format", None), uri) or format_of_name(path)
    return Location(uri=uri, kind="file", path=path, format=fmt, params=params)


def _parse_hdfs(uri: str) -> Location:
    parts = urlsplit(uri)
    if not parts.hostname:
        raise DataError(f"{redact_uri(uri)}: an HDFS URI needs a namenode, hdfs://host:port/path")
    params = dict(parse_qsl(parts.query))
    port = parts.port or 9870
    path = unquote(parts.path) or "/"
    fmt = _own_format(params.pop("format", None), uri) or format_of_name(path.rstrip("/"))
    return Location(uri=uri, kind="hdfs", path=path, format=fmt,
                    host=f"{parts.hostname}:{port}", params=params)


def _parse_sql(uri: str) -> Location:
    parts = urlsplit(uri)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in pairs if k in SQL_OWN_PARAMS}
    rest = [(k, v) for k, v in pairs if k not in SQL_OWN_PARAMS]
    if "table" in own and "query" in own:
        raise DataError(f"{redact_uri(uri)}: give either ?table= or ?query=, not both")
    _check_partition_params(uri, own)
    url = _unsplit(parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment)
    return Location(uri=uri, kind="sql", path=url, params=own)


def _check_partition_params(uri: str, own: dict[str, str]) -> None:
    """A partitioned SQL table's options are whole numbers, about a column of a ``?table=``."""
    for name, least in SQL_INT_PARAMS.items():
        if name not in own:
            continue
        if "partition_column" not in own:
            raise DataError(f"{redact_uri(uri)}: {name}= needs a partition_column=")
        try:
            value = int(own[name])
        except ValueError:
            value = None
        if value is None or (least is not None and value < least):
            wanted = "a whole number" if least is None else f"a whole number >= {least}"
            raise DataError(f"{redact_uri(uri)}: {name}= must be {wanted}, "
                            f"got {own[name]!r}")
    if "partition_column" in own:
        if not own["partition_column"]:
            raise DataError(f"{redact_uri(uri)}: partition_column= names no column")
        if "table" not in own:
            raise DataError(f"{redact_uri(uri)}: partition_column= needs ?table=NAME "
                            "(a ?query= cannot be split into ranges)")
