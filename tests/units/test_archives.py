"""Archive reading: every member is one unit; hostile members get reasons, never data."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile

import pytest

from sparkdl.units.archives import Limits, archive_kind, iter_units, open_bytes


def _units(name: str, data: bytes, limits: Limits | None = None) -> list:
    return list(iter_units(name, open_bytes(data), len(data), limits or Limits()))


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_plain_file_is_one_unit() -> None:
    units = _units("a.dcm", b"x" * 10)
    assert [(u.member, u.data) for u in units] == [(None, b"x" * 10)]


def test_dicom_named_zip_is_not_an_archive() -> None:
    head = b"\0" * 128 + b"DICM" + b"\0" * 400
    assert archive_kind("scan.zip", head) is None


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_tar_members_and_hostile_entries(mode: str) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in {"a/1.dcm": b"one", "../evil.dcm": b"evil", "/abs.dcm": b"abs"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("a/link.dcm")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
        folder = tarfile.TarInfo("a")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
    units = {
        u.member: u for u in _units("x.tar.gz" if "gz" in mode else "x.tar", buffer.getvalue())
    }
    assert units["a/1.dcm"].data == b"one"
    assert units["../evil.dcm"].reason == "unsafe_member_path"
    assert units["/abs.dcm"].reason == "unsafe_member_path"
    assert units["a/link.dcm"].reason == "not_regular_member"
    assert "a" not in units  # folders are not units
    assert all(u.data is None for k, u in units.items() if k != "a/1.dcm")


def test_zip_members_traversal_and_bomb() -> None:
    data = _zip({"ok.dcm": b"fine", "../../up.dcm": b"up", "bomb.bin": b"\0" * 5_000_000})
    units = {u.member: u for u in _units("x.zip", data)}
    assert units["ok.dcm"].data == b"fine"
    assert units["../../up.dcm"].reason == "unsafe_member_path"
    assert units["bomb.bin"].reason == "archive_bomb"  # ratio far over 200


def test_zip_member_over_size_cap() -> None:
    data = _zip({"big.bin": bytes(range(256)) * 100}, zipfile.ZIP_STORED)
    units = _units("x.zip", data, Limits(max_member_bytes=1000))
    assert [u.reason for u in units] == ["archive_bomb"]


def test_archive_total_cap() -> None:
    data = _zip({f"m{i}": bytes(range(256)) * 4 for i in range(5)}, zipfile.ZIP_STORED)
    units = _units("x.zip", data, Limits(max_archive_total_bytes=3000))
    assert [u.reason for u in units].count("archive_bomb") == 3
    assert sum(u.data is not None for u in units) == 2


def test_corrupt_and_truncated_archives_are_accounted() -> None:
    assert [u.reason for u in _units("bad.zip", b"PK\x03\x04garbage")] == ["corrupt_archive"]
    whole = _tar({f"m{i}.dcm": bytes(2000) for i in range(6)}, "w:gz")
    units = _units("cut.tar.gz", whole[: len(whole) // 2])
    assert units[-1].reason == "corrupt_archive" and units[-1].member is None
    assert all(u.data is not None for u in units[:-1])


def test_single_gzip_file_and_gzip_bomb() -> None:
    units = _units("scan.dcm.gz", gzip.compress(b"dicom bytes"))
    assert [(u.member, u.data) for u in units] == [("scan.dcm", b"dicom bytes")]
    bomb = gzip.compress(b"\0" * 3_000_000)
    assert [u.reason for u in _units("b.gz", bomb, Limits(max_member_bytes=1_000_000))] == [
        "archive_bomb"
    ]
