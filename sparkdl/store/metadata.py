"""A Petastorm dataset's metadata: ``_common_metadata`` written and read, row groups listed.

What Petastorm 0.13.1 writes after a Spark job (``materialize_dataset``) and reads before it
reads any row, done here with public pyarrow APIs (``pyarrow.fs``, ``pyarrow.parquet``):

* ``_common_metadata`` is a Parquet metadata file holding the first part file's Arrow schema
  plus two key-value entries: :data:`UNISCHEMA_KEY` (the pickled Unischema,
  :mod:`sparkdl.store.schema_pickle`) and :data:`ROW_GROUPS_PER_FILE_KEY` (JSON: part-file path
  relative to the dataset root → number of row groups);
* the part files are the files of the dataset folder whose names start with neither ``_``
  nor ``.`` and do not end with ``.crc`` (pyarrow's legacy dataset rule), sorted by path;
  row group ``i`` of that sorted list belongs to shard ``i % num_shards``.
"""

from __future__ import annotations

import json
import posixpath
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sparkdl.errors import InputError
from sparkdl.store.schema_pickle import SchemaPickleError, dumps, loads
from sparkdl.store.storage import arrow_filesystem
from sparkdl.store.unischema import Schema

UNISCHEMA_KEY = b"dataset-toolkit.unischema.v1"
ROW_GROUPS_PER_FILE_KEY = b"dataset-toolkit.num_row_groups_per_file.v1"
COMMON_METADATA = "_common_metadata"

#: Footers read at once when row groups are counted (remote stores answer slowly, in parallel).
_FOOTER_THREADS = 8


class RowGroup(NamedTuple):
    """One row group of one part file: the unit of sharding and of reading."""

    path: str
    index: int  # type: ignore[assignment]  # shadows tuple.index: the row group's number in its file


def write_metadata(url: str, schema: Schema) -> None:
    """Write ``_common_metadata`` for the part files now under ``url`` (after the Spark write)."""
    fs, root = arrow_filesystem(url)
    files = part_files(fs, root)
    if not files:
        raise InputError(f"No Parquet part files under {url}: nothing to describe.")
    counts = _footer_row_groups(fs, files)
    with fs.open_input_file(files[0]) as handle:
        arrow_schema = pq.read_schema(handle)
    metadata = dict(arrow_schema.metadata or {})
    metadata[UNISCHEMA_KEY] = dumps(schema)
    metadata[ROW_GROUPS_PER_FILE_KEY] = json.dumps(
        {posixpath.relpath(path, root): count for path, count in zip(files, counts)}
    ).encode()
    with fs.open_output_stream(f"{root}/{COMMON_METADATA}") as sink:
        pq.write_metadata(arrow_schema.with_metadata(metadata), sink)
    # Hadoop's local file system keeps a checksum beside each file; a stale one fails later reads.
    crc = f"{root}/.{COMMON_METADATA}.crc"
    if fs.get_file_info(crc).type == pafs.FileType.File:
        fs.delete_file(crc)


def read_schema(url: str) -> Schema:
    """The :class:`~sparkdl.store.unischema.Schema` stored in the dataset at ``url``."""
    metadata = _common_metadata(url)
    if UNISCHEMA_KEY not in metadata:
        raise InputError(
            f"{url}/{COMMON_METADATA} holds no Unischema "
            f"({UNISCHEMA_KEY.decode()}). Expected a Petastorm dataset: the "
            "volumes/ or patches/ folder of `sparkdl ingest` output."
        )
    try:
        return loads(metadata[UNISCHEMA_KEY])
    except SchemaPickleError as error:
        raise InputError(f"{url}: {error}") from None


def row_groups(url: str) -> tuple[pafs.FileSystem, list[RowGroup]]:
    """Every row group of the dataset at ``url`` in Petastorm's order, and its file system.

    Counts come from :data:`ROW_GROUPS_PER_FILE_KEY`, as Petastorm reads them; a part file
    the entry does not name (a file added by hand) has its footer read instead.
    """
    fs, root = arrow_filesystem(url)
    files = part_files(fs, root)
    if not files:
        raise InputError(
            f"No Parquet part files under {url}. Expected a Petastorm dataset: "
            "the volumes/ or patches/ folder of `sparkdl ingest` output."
        )
    stored = json.loads(_common_metadata(url).get(ROW_GROUPS_PER_FILE_KEY, b"{}").decode())
    unknown = [path for path in files if posixpath.relpath(path, root) not in stored]
    footer = dict(zip(unknown, _footer_row_groups(fs, unknown)))
    groups: list[RowGroup] = []
    for path in files:
        count = footer[path] if path in footer else int(stored[posixpath.relpath(path, root)])
        groups.extend(RowGroup(path, index) for index in range(count))
    return fs, groups


def shard(groups: list[RowGroup], shard_index: int, num_shards: int) -> list[RowGroup]:
    """The row groups of one shard: ``i % num_shards == shard_index`` (Petastorm's rule)."""
    return groups[shard_index::num_shards]


def part_files(fs: pafs.FileSystem, root: str, *, missing_ok: bool = False) -> list[str]:
    """The data files of the table folder ``root``, sorted by path (``missing_ok``: none
    when there is no such folder)."""
    info = fs.get_file_info(root)
    if info.type != pafs.FileType.Directory:
        if missing_ok and info.type == pafs.FileType.NotFound:
            return []
        raise InputError(f"No dataset folder at {root} (found: {info.type.name.lower()}).")
    entries = fs.get_file_info(pafs.FileSelector(root))
    folders = [
        e.base_name
        for e in entries
        if e.type == pafs.FileType.Directory and not e.base_name.startswith(("_", "."))
    ]
    if folders:
        raise InputError(
            f"{root} holds sub-folders {folders[:3]}: partitioned Petastorm "
            "datasets are not supported. Expected the flat folder sparkdl writes."
        )
    return sorted(
        e.path
        for e in entries
        if e.type == pafs.FileType.File
        and not e.base_name.startswith(("_", "."))
        and not e.base_name.endswith(".crc")
    )


def _common_metadata(url: str) -> dict[bytes, bytes]:
    fs, root = arrow_filesystem(url)
    path = f"{root}/{COMMON_METADATA}"
    try:
        with fs.open_input_file(path) as handle:
            schema = pq.read_schema(handle)
    except FileNotFoundError:
        raise InputError(
            f"No Petastorm dataset at {url}: {COMMON_METADATA} is missing. "
            "Expected the volumes/ or patches/ folder of `sparkdl ingest` "
            "output."
        ) from None
    except (OSError, pa.ArrowInvalid) as error:
        raise InputError(f"{url}/{COMMON_METADATA} cannot be read ({error}).") from None
    return dict(schema.metadata or {})


def _footer_row_groups(fs: pafs.FileSystem, files: list[str]) -> list[int]:
    def count(path: str) -> int:
        with fs.open_input_file(path) as handle:
            return int(pq.read_metadata(handle).num_row_groups)

    if len(files) <= 1:
        return [count(path) for path in files]
    with ThreadPoolExecutor(min(_FOOTER_THREADS, len(files))) as pool:
        return list(pool.map(count, files))
