"""Read the first member of every archive in some folders with pydicom alone (tests/test_synth.py).

Usage: ``python tests/scripts/read_archives.py DIR...``; prints ``NAME SOPClassUID PatientID``
per archive (``.zip``, else tar, compressed or not), in a process that never imported sparkdl.
"""

from __future__ import annotations

import io
import sys
import tarfile
import zipfile
from pathlib import Path

import pydicom


def first_member(path: Path) -> bytes:
    """The bytes of the archive's first member."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            return zf.read(zf.namelist()[0])
    with tarfile.open(path) as tf:
        member = tf.extractfile(tf.getmembers()[0])
        if member is None:
            raise ValueError(f"{path}: the first member is not a regular file")
        return member.read()


def main(folders: list[str]) -> None:
    for folder in folders:
        for path in sorted(Path(folder).iterdir()):
            ds = pydicom.dcmread(io.BytesIO(first_member(path)))
            print(path.name, ds.SOPClassUID, ds.PatientID)


if __name__ == "__main__":
    main(sys.argv[1:])
