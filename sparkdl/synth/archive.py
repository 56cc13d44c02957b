"""Where synthetic files go: random nested folder and file names, written loose or packed into
``.zip`` / ``.tar`` / ``.tar.gz`` archives with fixed timestamps and owners (same seed, same
bytes)."""

from __future__ import annotations

import gzip
import io
import logging
import tarfile
import zipfile
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

ZIP_DATE_TIME = (2020, 1, 1, 0, 0, 0)
TAR_MTIME = 1577836800  # 2020-01-01T00:00:00Z
_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))


def _token(rng: np.random.Generator, length: int) -> str:
    return "".join(rng.choice(_ALPHABET, size=length))


def layout_names(rng: np.random.Generator, series_keys: list[str]) -> list[str]:
    """Relative paths for one patient's files (in the given order): a random patient folder,
    one or two random folder levels per series (sometimes shared), random file names in one
    of three styles (hex, ``IM`` + digits, token + ``.dcm``)."""
    patient = _token(rng, 8)
    folders: dict[str, str] = {}
    shared = f"{patient}/{_token(rng, 6)}"
    for key in dict.fromkeys(series_keys):
        if rng.uniform() < 0.3:
            folders[key] = shared
        elif rng.uniform() < 0.5:
            folders[key] = f"{patient}/{_token(rng, 4)}/{_token(rng, 6)}"
        else:
            folders[key] = f"{patient}/{_token(rng, 8)}"
    style = int(rng.integers(3))
    names: list[str] = []
    used: set[str] = set()
    for key in series_keys:
        while True:
            if style == 0:
                name = f"{int(rng.integers(1 << 32)):08X}"
            elif style == 1:
                name = f"IM{int(rng.integers(10**7)):07d}"
            else:
                name = f"{_token(rng, 10).lower()}.dcm"
            path = f"{folders[key]}/{name}"
            if path not in used:
                used.add(path)
                names.append(path)
                break
    return names


class ArchiveWriter:
    """Writes each patient's files under ``dicom_dir``: loose in random order, or several
    patients per archive (``tar`` alternates ``.tar`` and ``.tar.gz``)."""

    def __init__(
        self,
        dicom_dir: Path,
        kind: str,
        num_patients: int,
        names_rng: np.random.Generator,
        archives_rng: np.random.Generator,
    ) -> None:
        self._dir, self._kind = dicom_dir, kind
        self._rng, self._archives_rng = names_rng, archives_rng
        # At least two archives once there are two patients, at most three patients per archive.
        self._per_archive = min(3, max(1, num_patients // 2))
        self._pending: list[tuple[str, bytes]] = []
        self._pending_patients = 0
        self._num_archives = 0

    def add_patient(self, files: list[tuple[str, bytes]]) -> None:
        """``files`` are (series key, bytes) pairs: files of one series share a folder."""
        names = layout_names(self._rng, [key for key, _ in files])
        order = self._rng.permutation(len(files))
        entries = [(names[i], files[i][1]) for i in order]
        if self._kind == "none":
            for name, data in entries:
                path = self._dir / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            return
        self._pending += entries
        self._pending_patients += 1
        if self._pending_patients == self._per_archive:
            self._flush()

    def close(self) -> int:
        """Write what is pending; return the number of archives written."""
        if self._pending:
            self._flush()
        return self._num_archives

    def _flush(self) -> None:
        entries = [self._pending[i] for i in self._archives_rng.permutation(len(self._pending))]
        stem = f"export_{_token(self._archives_rng, 6).lower()}"
        if self._kind == "zip":
            _write_zip(self._dir / f"{stem}.zip", entries)
        elif self._num_archives % 2 == 0:
            _write_tar(self._dir / f"{stem}.tar", entries, compress=False)
        else:
            _write_tar(self._dir / f"{stem}.tar.gz", entries, compress=True)
        self._num_archives += 1
        self._pending, self._pending_patients = [], 0


def _write_zip(path: Path, entries: list[tuple[str, bytes]]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            info.create_system = 3  # Unix, whatever the host
            zf.writestr(info, data)


def _write_tar(path: Path, entries: list[tuple[str, bytes]], *, compress: bool) -> None:
    with path.open("wb") as raw:
        # GzipFile with mtime=0 and no file name: the gzip header is the same on every run.
        stream = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if compress else raw
        try:
            with tarfile.open(fileobj=stream, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for name, data in entries:
                    info = tarfile.TarInfo(name)
                    info.size, info.mtime, info.mode = len(data), TAR_MTIME, 0o644
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    tar.addfile(info, io.BytesIO(data))
        finally:
            if compress:
                stream.close()
