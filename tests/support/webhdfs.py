"""A WebHDFS server on loopback that behaves like an HDFS NameNode plus one DataNode.

It serves the subset of the WebHDFS REST API the `hdfs` client uses, over a local directory:
GETFILESTATUS, LISTSTATUS, MKDIRS, DELETE, RENAME, GETHOMEDIRECTORY on the NameNode; OPEN,
CREATE and APPEND answer with a 307 redirect to the DataNode (a second port), which serves or
receives the bytes, exactly the two-step protocol of a real cluster. Errors are JSON
``RemoteException`` bodies, so the client raises ``HdfsError`` as it would against Hadoop.

    with WebHdfsServer() as hdfs:
        write_table(df, f"{hdfs.url}/data/x.parquet")
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

PREFIX = "/webhdfs/v1"


class HdfsFailure(Exception):
    """Becomes a RemoteException response."""

    def __init__(self, status: int, exception: str, message: str) -> None:
        super().__init__(message)
        self.status, self.exception, self.message = status, exception, message


class WebHdfsServer:
    """NameNode + DataNode over ``root`` (a temp dir by default), on 127.0.0.1."""

    def __init__(self, root: str | None = None) -> None:
        self._own_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="webhdfs-")
        self.requests: list[tuple[str, str, str, dict[str, str]]] = []  # node, op, path, params
        self._lock = threading.Lock()
        self.namenode = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, "namenode"))
        self.datanode = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, "datanode"))
        for server in (self.namenode, self.datanode):
            server.daemon_threads = True
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True)
                         for s in (self.namenode, self.datanode)]

    @property
    def port(self) -> int:
        return int(self.namenode.server_address[1])

    @property
    def url(self) -> str:
        """The ``hdfs://`` URI prefix of this cluster (append an absolute path)."""
        return f"hdfs://127.0.0.1:{self.port}"

    def start(self) -> WebHdfsServer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in (self.namenode, self.datanode):
            server.shutdown()
            server.server_close()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> WebHdfsServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def ops(self, node: str | None = None) -> list[str]:
        with self._lock:
            return [op for n, op, _, _ in self.requests if node in (None, n)]

    def local(self, hdfs_path: str) -> str:
        """The local file behind an HDFS path; refuses paths escaping the root."""
        norm = posixpath.normpath("/" + hdfs_path.lstrip("/"))
        if norm.startswith("/..") or "/../" in norm:
            raise HdfsFailure(400, "IllegalArgumentException", f"Invalid path {hdfs_path}")
        return os.path.join(self.root, norm.lstrip("/"))

    def _record(self, node: str, op: str, path: str, params: dict[str, str]) -> None:
        with self._lock:
            self.requests.append((node, op, path, params))


def _status(local: str, suffix: str) -> dict[str, Any]:
    info = os.stat(local)
    is_dir = os.path.isdir(local)
    return {
        "accessTime": int(info.st_atime * 1000), "blockSize": 134217728,
        "childrenNum": len(os.listdir(local)) if is_dir else 0, "fileId": info.st_ino,
        "group": "supergroup", "length": 0 if is_dir else info.st_size,
        "modificationTime": int(info.st_mtime * 1000), "owner": "vfl", "pathSuffix": suffix,
        "permission": "755" if is_dir else "644", "replication": 0 if is_dir else 1,
        "storagePolicy": 0, "type": "DIRECTORY" if is_dir else "FILE",
    }


def _check_parents(server: WebHdfsServer, path: str) -> None:
    parent = posixpath.dirname(path.rstrip("/"))
    while parent not in ("", "/"):
        if os.path.isfile(server.local(parent)):
            raise HdfsFailure(403, "ParentNotDirectoryException",
                              f"Parent path is not a directory: {parent}")
        parent = posixpath.dirname(parent)


def _not_found(path: str) -> HdfsFailure:
    return HdfsFailure(404, "FileNotFoundException", f"File does not exist: {path}")


def _handler(server: WebHdfsServer, node: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return bytes(out)
                    out += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _send(self, status: int, body: bytes = b"", kind: str = "application/json",
                  headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, obj: Any, status: int = 200) -> None:
            self._send(status, json.dumps(obj).encode())

        def _dispatch(self) -> None:
            parts = urlsplit(self.path)
            params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            op = params.get("op", "").upper()
            path = unquote(parts.path)
            body = self._body() if self.command in ("PUT", "POST") else b""
            server._record(node, op, path, params)
            try:
                if not path.startswith(PREFIX):
                    raise HdfsFailure(404, "IllegalArgumentException", f"Not WebHDFS: {path}")
                hdfs_path = path[len(PREFIX):] or "/"
                handle = getattr(self, f"_{node}_{op.lower()}", None)
                if handle is None:
                    raise HdfsFailure(400, "IllegalArgumentException",
                                      f"Invalid value for webhdfs parameter \"op\": {op}")
                handle(hdfs_path, server.local(hdfs_path), params, body)
            except OSError as exc:
                self._json({"RemoteException": {"exception": "IOException",
                                                "javaClassName": "java.io.IOException",
                                                "message": f"{path}: {exc.strerror}"}}, 500)
            except HdfsFailure as exc:
                self._json({"RemoteException": {"exception": exc.exception,
                                                "javaClassName": f"java.io.{exc.exception}",
                                                "message": exc.message}}, exc.status)

        do_GET = do_PUT = do_POST = do_DELETE = _dispatch

        def _redirect(self, hdfs_path: str, op: str, params: dict[str, str]) -> None:
            extra = {k: v for k, v in params.items() if k not in ("op",)}
            query = "&".join(f"{k}={quote(str(v))}" for k, v in extra.items())
            location = (f"http://127.0.0.1:{server.datanode.server_address[1]}{PREFIX}"
                        f"{quote(hdfs_path)}?op={op}&namenoderpcaddress=127.0.0.1:8020"
                        f"{'&' + query if query else ''}")
            self._send(307, b"", headers={"Location": location})

        # -- NameNode ---------------------------------------------------------------------

        def _namenode_getfilestatus(self, path: str, local: str, params: dict[str, str],
                                    body: bytes) -> None:
            if not os.path.exists(local):
                raise _not_found(path)
            self._json({"FileStatus": _status(local, "")})

        def _namenode_liststatus(self, path: str, local: str, params: dict[str, str],
                                 body: bytes) -> None:
            if not os.path.exists(local):
                raise _not_found(path)
            if os.path.isdir(local):
                statuses = [_status(os.path.join(local, n), n) for n in sorted(os.listdir(local))]
            else:
                statuses = [_status(local, "")]
            self._json({"FileStatuses": {"FileStatus": statuses}})

        def _namenode_gethomedirectory(self, path: str, local: str, params: dict[str, str],
                                       body: bytes) -> None:
            self._json({"Path": f"/user/{params.get('user.name', 'vfl')}"})

        def _namenode_mkdirs(self, path: str, local: str, params: dict[str, str],
                             body: bytes) -> None:
            if os.path.isfile(local):
                raise HdfsFailure(403, "FileAlreadyExistsException", f"Path is a file: {path}")
            _check_parents(server, path)
            os.makedirs(local, exist_ok=True)
            self._json({"boolean": True})

        def _namenode_delete(self, path: str, local: str, params: dict[str, str],
                             body: bytes) -> None:
            if not os.path.exists(local):
                self._json({"boolean": False})
                return
            if os.path.isdir(local):
                if os.listdir(local) and params.get("recursive", "").lower() != "true":
                    raise HdfsFailure(403, "PathIsNotEmptyDirectoryException",
                                      f"{path} is non empty': Directory is not empty")
                shutil.rmtree(local)
            else:
                os.remove(local)
            self._json({"boolean": True})

        def _namenode_rename(self, path: str, local: str, params: dict[str, str],
                             body: bytes) -> None:
            target = server.local(params.get("destination", ""))
            if not os.path.exists(local) or os.path.exists(target) \
                    or not os.path.isdir(os.path.dirname(target)):
                self._json({"boolean": False})
                return
            os.rename(local, target)
            self._json({"boolean": True})

        def _namenode_open(self, path: str, local: str, params: dict[str, str],
                           body: bytes) -> None:
            if not os.path.isfile(local):
                raise _not_found(path)
            self._redirect(path, "OPEN", params)

        def _namenode_create(self, path: str, local: str, params: dict[str, str],
                             body: bytes) -> None:
            if os.path.isdir(local):
                raise HdfsFailure(403, "FileAlreadyExistsException", f"{path} is a directory")
            if os.path.exists(local) and params.get("overwrite", "").lower() != "true":
                raise HdfsFailure(403, "FileAlreadyExistsException", f"{path} already exists")
            _check_parents(server, path)
            self._redirect(path, "CREATE", params)

        def _namenode_append(self, path: str, local: str, params: dict[str, str],
                             body: bytes) -> None:
            if not os.path.isfile(local):
                raise _not_found(path)
            self._redirect(path, "APPEND", params)

        # -- DataNode ---------------------------------------------------------------------

        def _datanode_open(self, path: str, local: str, params: dict[str, str],
                           body: bytes) -> None:
            if not os.path.isfile(local):
                raise _not_found(path)
            offset = int(params.get("offset") or 0)
            length = params.get("length")
            with open(local, "rb") as handle:
                handle.seek(offset)
                data = handle.read(int(length) if length not in (None, "None") else -1)
            self._send(200, data, kind="application/octet-stream")

        def _datanode_create(self, path: str, local: str, params: dict[str, str],
                             body: bytes) -> None:
            os.makedirs(os.path.dirname(local), exist_ok=True)
            partial = os.path.join(os.path.dirname(local),
                                   f".upload-{os.path.basename(local)}-{time.monotonic_ns()}")
            with open(partial, "wb") as handle:
                handle.write(body)
            os.replace(partial, local)
            self._send(201, b"", headers={"Location": f"hdfs://127.0.0.1:8020{path}"})

        def _datanode_append(self, path: str, local: str, params: dict[str, str],
                             body: bytes) -> None:
            with open(local, "ab") as handle:
                handle.write(body)
            self._send(200, b"")

    return Handler
