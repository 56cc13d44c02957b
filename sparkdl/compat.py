"""Known warnings of the pinned stack, silenced where they are known and nowhere else.

Petastorm 0.13.1 uses pyarrow 14's legacy dataset API (DESIGN.md pins), which prints
FutureWarnings on every use: in the driver, and in Spark's Python workers when Petastorm
counts row groups. Exactly these messages are filtered: in-process by
:func:`legacy_pyarrow_warnings_filtered`, in the workers through ``PYTHONWARNINGS``
(:data:`WORKER_PYTHONWARNINGS`, set by :func:`sparkdl.spark.get_spark`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

#: Message starts of the legacy-API FutureWarnings (regular expressions, matched at the start).
LEGACY_PYARROW_WARNINGS = (
    r"Passing 'use_legacy_dataset=True'",
    r".*deprecated as of pyarrow \d",
    r"pyarrow\.localfs is deprecated",
    r".*pyarrow\.filesystem",
)

#: The same, as literal message starts for ``PYTHONWARNINGS`` (which takes no regexes).
_WORKER_MESSAGES = (
    "Passing 'use_legacy_dataset=True'",
    "pyarrow.localfs is deprecated",
    "ParquetDatasetPiece is deprecated",
    "'ParquetDataset.fs' attribute is deprecated",
    "'ParquetDataset.partitions' attribute is deprecated",
    "'ParquetDataset.pieces' attribute is deprecated",
    "Specifying the 'metadata_nthreads' argument is deprecated",
    "pyarrow.filesystem.LocalFileSystem is deprecated",
)
WORKER_PYTHONWARNINGS = ",".join(f"ignore:{m}:FutureWarning" for m in _WORKER_MESSAGES)


@contextlib.contextmanager
def legacy_pyarrow_warnings_filtered() -> Iterator[None]:
    """Silence exactly the legacy-API FutureWarnings Petastorm triggers, nothing else."""
    with warnings.catch_warnings():
        for message in LEGACY_PYARROW_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=FutureWarning)
        yield
