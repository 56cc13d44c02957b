"""Read the first member of every archive in some folders with pydicom alone (tests/synth/).

Usage: ``python tests/scripts/read_archives.py DIR...``; prints ``RESULT <json>``: a
``[name, SOPClassUID, PatientID]`` per archive (``.zip``, else tar, compressed or not), read in
a process that never imported sparkdl.
"""

from __future__ import annotations

import io
import json
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
    found = []
    for folder in folders:
        for path in sorted(Path(folder).iterdir()):
            ds = pydicom.dcmread(io.BytesIO(first_member(path)))
            found.append([path.name, str(ds.SOPClassUID), str(ds.PatientID)])
    print("RESULT " + json.dumps(found))


if __name__ == "__main__":
    main(sys.argv[1:])
