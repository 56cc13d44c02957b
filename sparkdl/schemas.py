"""The Petastorm schemas of the two array datasets, declared once.

Each :class:`~sparkdl.unischema.Schema` here is used for the Spark write
(``encode_row`` / ``as_spark_schema``), stored as a Petastorm Unischema in the dataset
metadata (:mod:`sparkdl.dataset_metadata`), and read back by :func:`sparkdl.make_dataset`
(and by Petastorm's ``make_reader``, for users who still run it).

Conventions (shared by ``volumes/`` and ``patches/``):

* arrays are indexed ``(z, y, x)``: slice, row, column;
* ``spacing`` is ``(z, y, x)`` in mm;
* ``origin`` is the LPS position (x, y, z mm) of the centre of voxel ``(0, 0, 0)``;
* ``direction`` is a row-major 3×3 matrix whose *columns* are the LPS unit vectors of the
  column (x), row (y) and slice (z) index axes, so that
  ``world_xyz = origin + direction @ (spacing_xyz * index_xyz)``.

Storage: ``NdarrayCodec`` in Parquet with zstd, chosen by ``scripts/bench_storage.py``
(see its table): the CT arrays compress well under zstd already, and a fixed-shape
``NdarrayCodec`` cell has a fixed header, so whole batches decode with one ``frombuffer``.
"""

from __future__ import annotations

import numpy as np

from .unischema import Field, NdarrayCodec, ScalarCodec, Schema

#: Parquet compression for every dataset sparkdl writes.
PARQUET_COMPRESSION = "zstd"

VolumeSchema = Schema(
    "VolumeSchema",
    [
        Field("series_uid", np.str_, (), ScalarCodec("StringType"), False),
        Field("patient_id", np.str_, (), ScalarCodec("StringType"), False),
        Field("study_uid", np.str_, (), ScalarCodec("StringType"), False),
        Field("volume_id", np.str_, (), ScalarCodec("StringType"), False),
        Field("volume", np.int16, (None, None, None), NdarrayCodec(), False),
        Field("spacing", np.float64, (3,), NdarrayCodec(), False),
        Field("origin", np.float64, (3,), NdarrayCodec(), False),
        Field("direction", np.float64, (9,), NdarrayCodec(), False),
        Field("num_slices", np.int32, (), ScalarCodec("IntegerType"), False),
        # JSON list of {"code": ..., "detail": ...}; empty list when the series was clean.
        Field("warnings", np.str_, (), ScalarCodec("StringType"), False),
    ],
)


def patch_schema(size: int) -> Schema:
    """The ``patches/`` schema for cubic patches of ``size`` voxels per side."""
    return Schema(
        "PatchSchema",
        [
            Field("patch_id", np.str_, (), ScalarCodec("StringType"), False),
            Field("series_uid", np.str_, (), ScalarCodec("StringType"), False),
            Field("patient_id", np.str_, (), ScalarCodec("StringType"), False),
            Field("patch", np.int16, (size, size, size), NdarrayCodec(), False),
            Field("label", np.int32, (), ScalarCodec("IntegerType"), False),
            # 1 malignant, 0 benign, -1 unknown.
            Field("malignancy", np.int32, (), ScalarCodec("IntegerType"), False),
            Field("diameter_mm", np.float32, (), ScalarCodec("FloatType"), False),
            # World LPS (x, y, z) mm of the patch centre.
            Field("center", np.float64, (3,), NdarrayCodec(), False),
            # "annotation", "candidate" or "sampled".
            Field("source", np.str_, (), ScalarCodec("StringType"), False),
            Field("split", np.str_, (), ScalarCodec("StringType"), False),
        ],
    )
