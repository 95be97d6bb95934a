"""Connectors: parties read their tables where they live and write results back.

``read_table`` / ``iter_table`` / ``write_table`` take a URI (CSV or Parquet files and
directories of part files, local or on HDFS via WebHDFS, or any SQLAlchemy database);
``load_dataset`` reads a party's dataset as declared in its config and validates it.
"""

from vfl.connectors.dataset import Dataset, DatasetSpec, load_dataset
from vfl.connectors.tables import TableWriter, iter_table, open_writer, read_table, write_table
from vfl.connectors.uri import parse_uri, redact_uri

__all__ = [
    "Dataset",
    "DatasetSpec",
    "TableWriter",
    "iter_table",
    "load_dataset",
    "open_writer",
    "parse_uri",
    "read_table",
    "redact_uri",
    "write_table",
]
