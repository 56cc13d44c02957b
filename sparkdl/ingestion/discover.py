"""Listing the inputs on the driver and packing them into size-balanced Spark partitions.

Local paths are walked with ``os.walk`` (fast, and it sees symlinks for what they are);
any other Hadoop path (``hdfs://``, ``s3a://``, ...) is listed through the JVM's Hadoop
``FileSystem``, so whatever the cluster can read, ingest can list. Hidden files and files
starting with ``_`` are listed too: every regular file is accounted for.
"""

from __future__ import annotations

import heapq
import os
import posixpath
from collections.abc import Iterable
from dataclasses import replace

import pyarrow.fs as pafs
from pyspark.sql import SparkSession

from sparkdl.errors import InputError
from sparkdl.store.storage import (
    HadoopFS,
    arrow_filesystem,
    is_local,
    local_path,
    open_input,
)
from sparkdl.units.records import InputFile
from sparkdl.units.volume_file import data_file_of

#: Files per read task past which there are more tasks (finer progress), up to 10 per core.
_FILES_PER_TASK = 100
#: A MetaImage header is a few hundred bytes; a bigger ``.mhd`` is read by its task as is.
_MAX_HEADER_BYTES = 64 * 1024


def check_inputs_exist(inputs: list[str]) -> None:
    """InputError naming every input that does not exist, before any Spark work starts.

    Local paths are looked up directly, others through :mod:`pyarrow.fs` (HDFS, S3, ...);
    a store pyarrow cannot reach from the driver is left to :func:`list_inputs`.
    """
    missing = []
    for root in inputs:
        if is_local(root):
            path = local_path(root)
            if not (os.path.lexists(path)):
                missing.append(os.path.abspath(path))
            continue
        try:
            fs, path = arrow_filesystem(root)
            if fs.get_file_info(path).type == pafs.FileType.NotFound:
                missing.append(root)
        except (OSError, ValueError, ImportError):
            continue  # no client here for that scheme: Spark's Hadoop listing will tell
    if missing:
        raise InputError(
            f"Input not found: {', '.join(missing)}. Pass existing files or folders to ingest."
        )


def list_inputs(spark: SparkSession, inputs: list[str]) -> list[InputFile]:
    """List every file under ``inputs`` (files or folders), sorted by path.

    Raises InputError when an input does not exist, so a typo never yields an empty dataset.
    """
    found: dict[str, InputFile] = {}
    for root in inputs:
        files = _list_local(root) if is_local(root) else _list_hadoop(spark, root)
        for item in files:
            found[item.path] = item
    for header, claimed in _claimed_data_files(found.values()).items():
        data = found.pop(claimed)
        # The header's task reads both: partitions are balanced on the bytes it will read.
        found[header] = replace(found[header], size=found[header].size + data.size)
    return sorted(found.values(), key=lambda f: f.path)


def _claimed_data_files(files: Iterable[InputFile]) -> dict[str, str]:
    """``header → data file`` of the data files loose ``.mhd`` headers among ``files`` name
    beside them.

    Each is read with its header, on the executor that reads the header, and accounted with
    it: it is not a unit of its own. Headers are a few hundred bytes; one over
    :data:`_MAX_HEADER_BYTES` is no MetaImage header and claims nothing.
    """
    listed = {f.path for f in files}
    claimed: dict[str, str] = {}
    for item in files:
        if item.is_symlink or not item.path.lower().endswith(".mhd"):
            continue
        if item.size > _MAX_HEADER_BYTES:
            continue
        with open_input(item.path) as handle:
            relative = data_file_of(handle.read(_MAX_HEADER_BYTES))
        if relative is None:
            continue  # LOCAL, unreadable, or a path the reader refuses: nothing claimed
        # Not normpath: it would fold the // of a URI (hdfs://host/...).
        target = posixpath.join(posixpath.dirname(item.path), relative.removeprefix("./"))
        if target in listed and target != item.path and target not in claimed.values():
            claimed[item.path] = target
    return claimed


def _list_local(root: str) -> list[InputFile]:
    root = os.path.abspath(local_path(root))
    if os.path.islink(root) or os.path.isfile(root):
        return [_local_file(root)]
    if not os.path.isdir(root):
        raise InputError(f"Input not found: {root}. Pass existing files or folders to ingest.")
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            files.append(_local_file(os.path.join(dirpath, name)))
        # os.walk lists a symlinked folder among dirnames and does not enter it: account for it.
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if os.path.islink(full):
                files.append(_local_file(full))
    return files


def _local_file(path: str) -> InputFile:
    status = os.lstat(path)
    modified_ms = status.st_mtime_ns // 1_000_000
    if os.path.islink(path):
        return InputFile(path, 0, True, modified_ms)
    return InputFile(path, status.st_size, False, modified_ms)


def _list_hadoop(spark: SparkSession, root: str) -> list[InputFile]:
    fs = HadoopFS(spark, root)
    if not fs.exists(root):
        raise InputError(f"Input not found: {root}. Pass existing files or folders to ingest.")
    return [InputFile(*entry) for entry in fs.list_files(root)]


def pack_partitions(files: list[InputFile], num_partitions: int) -> list[list[InputFile]]:
    """Pack files into at most ``num_partitions`` bins of about equal total bytes, the files
    of a folder in one bin unless the folder is larger than a bin's share.

    Archives and PACS exports keep a series in one folder (or one archive, a file of its
    own): read by one task, its slices are staged in one part, which the task that
    assembles it reads (:mod:`sparkdl.ingestion.local_assembly`). A larger folder is cut
    into runs of consecutive files of about a bin's share, so one large series is still
    parsed on every core.
    Largest first into the lightest bin (LPT): many small folders share a task, one big
    archive gets a task to itself, and the order within a bin stays by path for
    reproducibility.
    """
    if not files:
        return []
    total = sum(max(f.size, 1) for f in files)
    share = max(1, -(-total // max(1, num_partitions)))
    chunks: list[list[InputFile]] = []
    for folder in _by_folder(files):
        size = sum(max(f.size, 1) for f in folder)
        pieces = max(1, round(size / share))
        chunks += _consecutive(folder, pieces)
    num_partitions = max(1, min(num_partitions, len(chunks)))
    heap = [(0, index) for index in range(num_partitions)]
    bins: list[list[InputFile]] = [[] for _ in range(num_partitions)]
    sized = [(sum(max(f.size, 1) for f in chunk), chunk) for chunk in chunks]
    for size, chunk in sorted(sized, key=lambda item: (-item[0], item[1][0].path)):
        load, index = heapq.heappop(heap)
        bins[index] += chunk
        heapq.heappush(heap, (load + size, index))
    return [sorted(b, key=lambda f: f.path) for b in bins if b]


def _by_folder(files: list[InputFile]) -> list[list[InputFile]]:
    """The files grouped by the folder that holds them, each group sorted by path."""
    folders: dict[str, list[InputFile]] = {}
    for item in sorted(files, key=lambda f: f.path):
        folders.setdefault(posixpath.dirname(item.path), []).append(item)
    return list(folders.values())


def _consecutive(files: list[InputFile], pieces: int) -> list[list[InputFile]]:
    """``files`` cut into at most ``pieces`` runs of consecutive files of about equal bytes."""
    if pieces <= 1 or len(files) <= 1:
        return [files]
    target = sum(max(f.size, 1) for f in files) / pieces
    runs: list[list[InputFile]] = [[]]
    load = 0.0
    for item in files:
        if runs[-1] and load + max(item.size, 1) / 2 > target * len(runs) and len(runs) < pieces:
            runs.append([])
        runs[-1].append(item)
        load += max(item.size, 1)
    return runs


def choose_num_partitions(
    files: list[InputFile], parallelism: int, target_bytes: int = 128 * 1024**2
) -> int:
    """Enough partitions for every core (×3 for balance), more when the data is large.

    Many files get up to ×10 (a task per ~100 files): the read stage's progress counts the
    files of finished tasks, and a handful of long tasks made it jump from 0 to 100 %.
    """
    total = sum(f.size for f in files)
    by_count = min(parallelism * 10, -(-len(files) // _FILES_PER_TASK))
    return max(parallelism * 3, by_count, -(-total // target_bytes))
