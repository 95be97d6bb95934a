"""The few file-system operations the file formats need, for local disks and WebHDFS.

One small interface keeps CSV/Parquet code ignorant of where bytes live: local files, or
HDFS through the NameNode's WebHDFS REST API with the `hdfs` package (``InsecureClient``).
HDFS reads are ranged (``OPEN`` with offset/length), so Parquet can seek to its footer and
stream row groups without downloading the file.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from typing import IO, Any, Protocol, cast

import pyarrow as pa

from vfl.connectors.uri import Location


class FileSystem(Protocol):
    """What the table formats need from a store."""

    def isdir(self, path: str) -> bool: ...
    def exists(self, path: str) -> bool: ...
    def size(self, path: str) -> int: ...
    def listdir(self, path: str) -> list[str]: ...
    def open_read(self, path: str) -> IO[bytes]: ...
    def open_write(self, path: str, append: bool = False) -> IO[bytes]: ...
    def remove(self, path: str) -> None: ...
    def rename(self, src: str, dst: str) -> None: ...
    def makedirs(self, path: str) -> None: ...
    def join(self, *parts: str) -> str: ...


class LocalFileSystem:
    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def size(self, path: str) -> int:
        return os.path.getsize(path)

    def listdir(self, path: str) -> list[str]:
        return sorted(os.listdir(path))

    def open_read(self, path: str) -> IO[bytes]:
        # Arrow's own file: its readers then stream without copying through Python bytes.
        return cast(IO[bytes], pa.OSFile(path, "r"))

    def open_write(self, path: str, append: bool = False) -> IO[bytes]:
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        return open(path, "ab" if append else "wb")

    def remove(self, path: str) -> None:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def join(self, *parts: str) -> str:
        return os.path.join(*parts)


class WebHdfsFileSystem:
    """HDFS through WebHDFS (``hdfs.InsecureClient``); ``?user=`` sets the HDFS user."""

    def __init__(self, host: str, user: str | None = None, timeout: float = 60.0) -> None:
        from hdfs import InsecureClient

        self.client = InsecureClient(f"http://{host}", user=user, timeout=timeout)

    def _status(self, path: str) -> dict[str, Any] | None:
        status = self.client.status(path, strict=False)
        return dict(status) if status else None

    def isdir(self, path: str) -> bool:
        status = self._status(path)
        return bool(status and status["type"] == "DIRECTORY")

    def exists(self, path: str) -> bool:
        return self._status(path) is not None

    def size(self, path: str) -> int:
        status = self._status(path)
        if status is None:
            raise FileNotFoundError(path)
        return int(status["length"])

    def listdir(self, path: str) -> list[str]:
        return sorted(self.client.list(path))

    def open_read(self, path: str) -> IO[bytes]:
        # A small buffer: Parquet then fetches just the byte ranges it needs (footer, the
        # selected columns); large reads (CSV blocks) bypass the buffer.
        return io.BufferedReader(_RangedHdfsFile(self.client, path, self.size(path)),
                                 buffer_size=64 << 10)

    def open_write(self, path: str, append: bool = False) -> IO[bytes]:
        return cast(IO[bytes], _HdfsWriter(self.client, path, append))

    def remove(self, path: str) -> None:
        self.client.delete(path, recursive=True)

    def rename(self, src: str, dst: str) -> None:
        self.client.delete(dst, recursive=True)
        self.client.rename(src, dst)

    def makedirs(self, path: str) -> None:
        self.client.makedirs(path)

    def join(self, *parts: str) -> str:
        return "/".join([parts[0].rstrip("/"), *(p.strip("/") for p in parts[1:])])


class _RangedHdfsFile(io.RawIOBase):
    """A seekable read-only file over WebHDFS ``OPEN`` with offset and length."""

    def __init__(self, client: Any, path: str, length: int) -> None:
        self._client, self._path, self._length, self._pos = client, path, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._length - self._pos)
        if want <= 0:
            return 0
        with self._client.read(self._path, offset=self._pos, length=want) as reader:
            data = reader.read(want)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


class _HdfsWriter(io.RawIOBase):
    """A sequential writer spooled to a temporary file and uploaded on close.

    The upload sends a sized body (``CREATE``/``APPEND`` with the two-step redirect), so
    memory stays bounded however large the table, and a failed write leaves no partial file.
    """

    def __init__(self, client: Any, path: str, append: bool) -> None:
        self._client, self._path, self._append = client, path, append
        self._spool = tempfile.SpooledTemporaryFile(max_size=32 << 20)

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._spool.tell()

    def write(self, data: Any) -> int:
        return self._spool.write(data)

    def discard(self) -> None:
        """Drop what was written; nothing reaches HDFS."""
        super().close()
        self._spool.close()

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        try:
            self._spool.seek(0)
            if self._append:
                self._client.write(self._path, data=self._spool, append=True)
            else:
                self._client.write(self._path, data=self._spool, overwrite=True)
        finally:
            self._spool.close()


def filesystem_for(location: Location) -> FileSystem:
    """The file system a file or HDFS location lives on."""
    if location.kind == "hdfs":
        return WebHdfsFileSystem(location.host, user=location.params.get("user"))
    return LocalFileSystem()
