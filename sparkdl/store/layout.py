"""The dataset handle: one ingest output, named once, accepted by every entry point.

``sparkdl ingest`` writes one folder (local, HDFS, S3: any Hadoop path) laid out as the README
says. :class:`Dataset` is that folder: its root, the path and URL of each table, and its
manifest. Every stage (``make_dataset``, ``plan_shards``, ``train``, ``evaluate``,
``predict``, ``inspect``) takes a ``Dataset`` or a plain path or URL of the root
(:meth:`Dataset.of`); the tables' names and schemas are declared in
:mod:`sparkdl.store.tables`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from sparkdl.errors import InputError
from sparkdl.store.storage import arrow_filesystem, join, to_url
from sparkdl.store.tables import (
    CATALOG,
    DICOM,
    INPUTS,
    LINEAGE,
    MANIFEST,
    PATCHES,
    REJECTED,
    STAGING,
    VOLUMES,
)


@dataclass(frozen=True)
class Dataset:
    """An ingest output folder: ``Dataset("/data/out").patches`` is ``/data/out/patches``."""

    root: str

    def __post_init__(self) -> None:
        if not isinstance(self.root, str) or not self.root.strip():
            raise InputError(
                f"A dataset is the folder `sparkdl ingest` wrote. Received: {self.root!r}."
            )
        object.__setattr__(self, "root", self.root.rstrip("/") or "/")

    @classmethod
    def of(cls, data: Dataset | str | os.PathLike[str]) -> Dataset:
        """``data`` as a handle: a :class:`Dataset`, or the path or URL of its root."""
        if isinstance(data, Dataset):
            return data
        if isinstance(data, os.PathLike):
            data = os.fspath(data)
        if not isinstance(data, str):
            raise InputError(
                f"Expected a sparkdl.Dataset or the path/URL of an ingest output. "
                f"Received: {type(data).__name__}."
            )
        return cls(data)

    def path(self, name: str) -> str:
        """The path of ``name`` (a table, ``manifest.json``, ...) under the root."""
        return join(self.root, name)

    def url(self, name: str) -> str:
        """The same as a URL (``file:///abs/...`` for local paths)."""
        return to_url(self.path(name))

    @property
    def catalog(self) -> str:
        return self.path(CATALOG)

    @property
    def volumes(self) -> str:
        return self.path(VOLUMES)

    @property
    def patches(self) -> str:
        return self.path(PATCHES)

    @property
    def dicom(self) -> str:
        return self.path(DICOM)

    @property
    def rejected(self) -> str:
        return self.path(REJECTED)

    @property
    def lineage(self) -> str:
        return self.path(LINEAGE)

    @property
    def inputs(self) -> str:
        return self.path(INPUTS)

    @property
    def staging(self) -> str:
        return self.path(STAGING)

    def manifest(self) -> dict[str, Any]:
        """``manifest.json``; :class:`InputError` when the run never finished or it is not valid."""
        fs, path = arrow_filesystem(self.path(MANIFEST))
        try:
            with fs.open_input_stream(path) as stream:
                text = stream.read().decode("utf-8")
        except FileNotFoundError:
            raise InputError(
                f"{self.root} is not a sparkdl ingest output: no {MANIFEST} there. Expected the "
                f"folder given to `sparkdl ingest --output OUT` ({MANIFEST}, {CATALOG}/, "
                f"{VOLUMES}/, {PATCHES}/); an ingest that was interrupted leaves no {MANIFEST} "
                "(it is written last): run it again."
            ) from None
        try:
            manifest = json.loads(text)
        except ValueError as err:
            raise InputError(
                f"{self.path(MANIFEST)} is not valid JSON ({err}); expected the "
                "manifest written by sparkdl ingest. Run the ingest again."
            ) from None
        if not isinstance(manifest, dict) or "counts" not in manifest:
            raise InputError(
                f"{self.path(MANIFEST)} has no 'counts'; expected the manifest "
                "written by sparkdl ingest. Run the ingest again."
            )
        return manifest
