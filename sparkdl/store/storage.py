"""File access that works on local paths and any Hadoop-style URI.

Executors read inputs and write exported DICOM with :mod:`pyarrow.fs` (local, HDFS through
libhdfs, S3 with ``s3a://`` mapped to ``s3://``); the driver moves finished outputs into
place with the JVM's Hadoop ``FileSystem``, whose rename is atomic on HDFS and local disks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import urlparse

from pyspark.sql import SparkSession

if TYPE_CHECKING:
    import pyarrow.fs as pafs


def is_local(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file")


def local_path(uri: str) -> str:
    return urlparse(uri).path if uri.startswith("file:") else uri


def _arrow_fs(uri: str) -> tuple[pafs.FileSystem, str]:
    import pyarrow.fs as pafs

    if uri.startswith("s3a://"):
        uri = "s3://" + uri[len("s3a://") :]
    fs, path = pafs.FileSystem.from_uri(uri)
    return fs, path


def arrow_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """``(pyarrow filesystem, path)`` for ``uri``; local paths may be relative."""
    if is_local(uri):
        import pyarrow.fs as pafs

        return pafs.LocalFileSystem(), os.path.abspath(local_path(uri))
    return _arrow_fs(uri)


def open_input(uri: str) -> BinaryIO:
    """A seekable binary stream over ``uri`` (zip needs seeking)."""
    if is_local(uri):
        return open(local_path(uri), "rb")
    fs, path = _arrow_fs(uri)
    return cast(BinaryIO, fs.open_input_file(path))  # a pyarrow NativeFile: reads and seeks


def write_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` to ``uri``, creating parent folders."""
    if is_local(uri):
        path = local_path(uri)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
        return
    fs, path = _arrow_fs(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as handle:
        handle.write(data)


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


class HadoopFS:
    """The few driver-side file operations output commits need, through the JVM."""

    def __init__(self, spark: SparkSession, uri: str) -> None:
        # py4j's JVMView (untyped); pyspark declares it None until a context starts.
        self._jvm: Any = spark.sparkContext._jvm
        conf = spark.sparkContext._jsc.hadoopConfiguration()
        self._fs = self._path(uri).getFileSystem(conf)

    def _path(self, uri: str) -> Any:  # a JVM org.apache.hadoop.fs.Path
        return self._jvm.org.apache.hadoop.fs.Path(uri)

    def exists(self, uri: str) -> bool:
        return bool(self._fs.exists(self._path(uri)))

    def delete(self, uri: str) -> None:
        if self.exists(uri):
            self._fs.delete(self._path(uri), True)

    def mkdirs(self, uri: str) -> None:
        self._fs.mkdirs(self._path(uri))

    def rename(self, src: str, dst: str) -> None:
        if not self._fs.rename(self._path(src), self._path(dst)):
            raise OSError(f"could not move {src} to {dst}")

    def write_text(self, uri: str, text: str) -> None:
        """Write ``text`` to a temporary name, then rename: readers never see half a file."""
        tmp = uri + ".tmp"
        stream = self._fs.create(self._path(tmp), True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()
        self.delete(uri)
        self.rename(tmp, uri)

    def list_files(self, uri: str) -> list[tuple[str, int, bool, int]]:
        """``(uri, size, is_symlink, modified_ms)`` of every file under ``uri``, recursively."""
        files = []
        iterator = self._fs.listFiles(self._path(uri), True)
        while iterator.hasNext():
            status = iterator.next()
            files.append(
                (
                    status.getPath().toString(),
                    int(status.getLen()),
                    bool(status.isSymlink()),
                    int(status.getModificationTime()),
                )
            )
        return files

    def children(self, uri: str) -> list[str]:
        """The entries directly under the folder ``uri``."""
        return sorted(
            status.getPath().toString() for status in self._fs.listStatus(self._path(uri))
        )

    def read_text(self, uri: str) -> str:
        stream = self._fs.open(self._path(uri))
        try:
            reader = self._jvm.java.io.BufferedReader(
                self._jvm.java.io.InputStreamReader(stream, "UTF-8")
            )
            lines = []
            line = reader.readLine()
            while line is not None:
                lines.append(line)
                line = reader.readLine()
            return "\n".join(lines)
        finally:
            stream.close()


def to_url(path: str) -> str:
    """A URL Petastorm accepts: local paths become ``file:///abs/path``."""
    if "://" in path:
        return path
    return Path(local_path(path)).resolve().as_uri()
