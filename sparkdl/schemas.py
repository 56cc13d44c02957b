"""The Petastorm schemas of the two array datasets, declared once.

Each :class:`~petastorm.unischema.Unischema` here is used for the Spark write
(``dict_to_spark_row`` / ``as_spark_schema``), stored by Petastorm in the dataset metadata,
and read back by ``make_reader`` and :func:`sparkdl.make_dataset`.

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
from petastorm.codecs import NdarrayCodec, ScalarCodec
from petastorm.unischema import Unischema, UnischemaField
from pyspark.sql.types import FloatType, IntegerType, StringType

#: Parquet compression for every dataset sparkdl writes.
PARQUET_COMPRESSION = "zstd"

VolumeSchema = Unischema(
    "VolumeSchema",
    [
        UnischemaField("series_uid", np.str_, (), ScalarCodec(StringType()), False),
        UnischemaField("patient_id", np.str_, (), ScalarCodec(StringType()), False),
        UnischemaField("study_uid", np.str_, (), ScalarCodec(StringType()), False),
        UnischemaField("volume_id", np.str_, (), ScalarCodec(StringType()), False),
        UnischemaField("volume", np.int16, (None, None, None), NdarrayCodec(), False),
        UnischemaField("spacing", np.float64, (3,), NdarrayCodec(), False),
        UnischemaField("origin", np.float64, (3,), NdarrayCodec(), False),
        UnischemaField("direction", np.float64, (9,), NdarrayCodec(), False),
        UnischemaField("num_slices", np.int32, (), ScalarCodec(IntegerType()), False),
        # JSON list of {"code": ..., "detail": ...}; empty list when the series was clean.
        UnischemaField("warnings", np.str_, (), ScalarCodec(StringType()), False),
    ],
)


def patch_schema(size: int) -> Unischema:
    """The ``patches/`` schema for cubic patches of ``size`` voxels per side."""
    return Unischema(
        "PatchSchema",
        [
            UnischemaField("patch_id", np.str_, (), ScalarCodec(StringType()), False),
            UnischemaField("series_uid", np.str_, (), ScalarCodec(StringType()), False),
            UnischemaField("patient_id", np.str_, (), ScalarCodec(StringType()), False),
            UnischemaField("patch", np.int16, (size, size, size), NdarrayCodec(), False),
            UnischemaField("label", np.int32, (), ScalarCodec(IntegerType()), False),
            # 1 malignant, 0 benign, -1 unknown.
            UnischemaField("malignancy", np.int32, (), ScalarCodec(IntegerType()), False),
            UnischemaField("diameter_mm", np.float32, (), ScalarCodec(FloatType()), False),
            # World LPS (x, y, z) mm of the patch centre.
            UnischemaField("center", np.float64, (3,), NdarrayCodec(), False),
            # "annotation", "candidate" or "sampled".
            UnischemaField("source", np.str_, (), ScalarCodec(StringType()), False),
            UnischemaField("split", np.str_, (), ScalarCodec(StringType()), False),
        ],
    )
