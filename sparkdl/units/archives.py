"""Reading one input file as a stream of units: the file itself, or each archive member.

Runs on executors. Archives are read member by member, never extracted to disk, and every
read is bounded: a member's bytes are read up to ``max_member_bytes + 1`` whatever its
header claims, so a lying header cannot blow up memory. Hostile members (``../`` or absolute
names, links, devices, bombs) become units with a reject reason instead of data.

Accounting: every regular file is one unit; an archive that opens is one unit per member
(directories are not units); an archive that does not open at all, or the unreadable rest of
a damaged one, is one unit with ``member=None`` and reason ``corrupt_archive``.
"""

from __future__ import annotations

import gzip
import io
import posixpath
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal, Protocol

from sparkdl.config import check_ranges

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Limits:
    """Caps that keep input reading bounded (ingest.yaml ``limits``)."""

    #: Rows x Columns x NumberOfFrames x SamplesPerPixel above which an instance is rejected.
    max_pixels: int = 600_000_000
    max_member_bytes: int = 2 * 1024**3
    max_archive_total_bytes: int = 200 * 1024**3
    max_compression_ratio: float = 200.0
    max_file_bytes: int = 4 * 1024**3

    def __post_init__(self) -> None:
        sizes = ("max_pixels", "max_member_bytes", "max_archive_total_bytes", "max_file_bytes")
        check_ranges(
            self,
            [(name, getattr(self, name) > 0, "an integer > 0") for name in sizes]
            + [("max_compression_ratio", self.max_compression_ratio > 1, "a number > 1")],
        )


@dataclass(frozen=True)
class Unit:
    """One accountable input: ``data`` to parse, or a ``reason`` why it was rejected."""

    member: str | None
    data: bytes | None
    reason: str | None = None
    detail: str | None = None


Opener = Callable[[], BinaryIO]
#: tarfile's streaming modes (no seeking): plain and gzip-compressed.
_TarMode = Literal["r|", "r|gz"]


class _Readable(Protocol):
    """A byte stream: an input file, a zip member or a gzip stream."""

    def read(self, size: int = -1, /) -> bytes: ...


def archive_kind(name: str, head: bytes) -> str | None:
    """Classify by magic bytes first and file name second: "zip", "tar", "gzip" or None.

    A DICOM file (``DICM`` at offset 128) is never an archive, whatever its name.
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return None
    if head[:4] in _ZIP_MAGIC:
        return "zip"
    if head[:2] == _GZIP_MAGIC:
        return "gzip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    lower = name.lower()
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith((".tar.gz", ".tgz", ".gz")):
        return "gzip"
    if lower.endswith(".tar"):
        return "tar"
    return None


def _read_capped(stream: _Readable, cap: int) -> bytes | None:
    """Read at most ``cap`` bytes; None when the stream holds more."""
    data = stream.read(cap + 1)
    return None if len(data) > cap else data


def _unsafe_name(name: str) -> str | None:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "parent directory reference (../)"
    return None


def iter_units(name: str, opener: Opener, size: int, limits: Limits) -> Iterator[Unit]:
    """Yield the units of one input file: itself, or its members when it is an archive."""
    with opener() as stream:  # a plain file is read in this one pass
        head = stream.read(512)
        kind = archive_kind(name, head)
        if kind is None:
            if size > limits.max_file_bytes:
                yield Unit(None, None, "file_too_large", f"{size} bytes > limits.max_file_bytes")
            else:
                yield Unit(None, head + stream.read())
            return
    if kind == "zip":
        yield from _zip_units(opener, limits)
    elif kind == "tar":
        yield from _tar_units(opener, "r|", limits)
    else:
        yield from _gzip_units(name, opener, limits)


def _screen(
    name: str, irregular: str | None, size: int, ratio: float, total: int, limits: Limits
) -> tuple[str, str] | None:
    """Why a member must not be read (reason, detail), from its header alone; None if fine.

    ``total`` is what the archive's members read so far add up to.
    """
    unsafe = _unsafe_name(name)
    if unsafe:
        return "unsafe_member_path", unsafe
    if irregular:
        return "not_regular_member", irregular
    if size > limits.max_member_bytes or ratio > limits.max_compression_ratio:
        return "archive_bomb", f"declared {size} bytes, ratio {ratio:.0f}"
    if total + size > limits.max_archive_total_bytes:
        return "archive_bomb", "archive total exceeds limits.max_archive_total_bytes"
    return None


def _zip_units(opener: Opener, limits: Limits) -> Iterator[Unit]:
    with opener() as raw:  # zipfile needs a seekable file: storage.open_input gives one
        try:
            archive = zipfile.ZipFile(raw)
            infos = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
            yield Unit(None, None, "corrupt_archive", f"zip: {err}")
            return
        total = 0
        for info in infos:
            if info.is_dir():
                continue
            mode = (info.external_attr >> 16) & 0o170000
            irregular = f"zip member mode {oct(mode)}" if mode and mode != 0o100000 else None
            problem = _screen(
                info.filename,
                irregular,
                info.file_size,
                info.file_size / max(info.compress_size, 1),
                total,
                limits,
            )
            if problem:
                yield Unit(info.filename, None, *problem)
                continue
            total += info.file_size
            try:
                with archive.open(info) as member:
                    data = _read_capped(member, limits.max_member_bytes)
            except (
                zipfile.BadZipFile,
                OSError,
                EOFError,
                NotImplementedError,
                RuntimeError,
            ) as err:
                yield Unit(info.filename, None, "corrupt_archive_member", str(err)[:200])
                continue
            if data is None:
                yield Unit(info.filename, None, "archive_bomb", "member larger than declared")
                continue
            yield Unit(info.filename, data)


def _tar_units(opener: Opener, mode: _TarMode, limits: Limits) -> Iterator[Unit]:
    count = 0
    total = 0
    with opener() as raw:
        try:
            # Streaming, over `raw` (closed by the with above); nothing else to release.
            archive = tarfile.open(fileobj=raw, mode=mode)  # noqa: SIM115
        except (tarfile.TarError, OSError, EOFError) as err:
            yield Unit(None, None, "corrupt_archive", f"tar: {err}")
            return
        try:
            for info in archive:
                count += 1
                if info.isdir():
                    continue
                irregular = None
                if not info.isfile():
                    kind = "link" if (info.issym() or info.islnk()) else "special file"
                    irregular = f"tar member is a {kind}"
                problem = _screen(info.name, irregular, info.size, 1.0, total, limits)
                if problem:
                    yield Unit(info.name, None, *problem)
                    continue
                total += info.size
                member = archive.extractfile(info)
                data = member.read() if member is not None else None
                if data is None or len(data) != info.size:
                    yield Unit(info.name, None, "corrupt_archive_member", "short read")
                    continue
                yield Unit(info.name, data)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
            yield Unit(None, None, "corrupt_archive", f"tar stopped after {count} members: {err}")


def _gzip_units(name: str, opener: Opener, limits: Limits) -> Iterator[Unit]:
    """A ``.tar.gz``/``.tgz`` is a tar; any other gzip is one compressed file."""
    try:
        with opener() as raw, gzip.GzipFile(fileobj=raw) as stream:
            head = stream.read(512)
    except (OSError, EOFError, zlib.error) as err:
        yield Unit(None, None, "corrupt_archive", f"gzip: {err}")
        return
    if len(head) >= 262 and head[257:262] == b"ustar":
        yield from _tar_units(opener, "r|gz", limits)
        return
    inner = posixpath.basename(name)
    inner = inner[:-3] if inner.lower().endswith(".gz") else inner
    try:
        with opener() as raw, gzip.GzipFile(fileobj=raw) as stream:
            data = _read_capped(stream, limits.max_member_bytes)
    except (OSError, EOFError, zlib.error) as err:
        yield Unit(None, None, "corrupt_archive", f"gzip: {err}")
        return
    if data is None:
        yield Unit(inner, None, "archive_bomb", "decompressed size over limits.max_member_bytes")
        return
    yield Unit(inner, data)


def open_bytes(data: bytes) -> Opener:
    """An opener over in-memory bytes (tests, small remote files)."""
    return lambda: io.BytesIO(data)
