"""Every table of a dataset, declared once: its folder name, its schema, the shared values.

A dataset (``sparkdl ingest --output OUT``, :class:`sparkdl.store.layout.Dataset`) is a
folder of tables. Each is named and given its schema here, and every stage imports both from
here: the Spark/Arrow schemas of the Parquet tables, and the Petastorm schemas of the two
array datasets (``volumes/``, ``patches/``), which are used for the write
(``encode_row``), stored as a Petastorm Unischema in the metadata
(:mod:`sparkdl.store.metadata`) and read back by :func:`sparkdl.make_dataset` (and by
Petastorm's ``make_reader``, for users who still run it).

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

from typing import Any

import numpy as np
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from sparkdl.errors import InputError
from sparkdl.store.unischema import Field, NdarrayCodec, ScalarCodec, Schema

# ---- Folder names (under the dataset root) ------------------------------------------------

CATALOG = "catalog"
VOLUMES = "volumes"
PATCHES = "patches"
READS = "reads"
NODULES = "nodules"
FINDINGS = "findings"
CANDIDATES = "candidates"
DICOM = "dicom"
MANIFEST = "manifest.json"
REJECTED = "_restricted/rejected"
LINEAGE = "_restricted/lineage"
INPUTS = "_restricted/inputs"
STAGING = "_staging"

#: Every table an overwrite run replaces as a whole.
TABLES = (
    CATALOG,
    VOLUMES,
    PATCHES,
    READS,
    NODULES,
    FINDINGS,
    CANDIDATES,
    DICOM,
    REJECTED,
    LINEAGE,
    INPUTS,
)

# ---- Values shared by the stages that write and read the patches --------------------------

#: The patient splits, in the order their fractions are given.
SPLITS = ("train", "val", "test")
#: Where a patch's point came from.
SOURCES = ("annotation", "candidate", "sampled", "generated")
#: The label column each training task learns: ``task → patch column``.
LABEL_FIELDS = {"nodule": "label", "malignancy": "malignancy"}
#: The lung window (level, width) in HU: training's default input window and the pictures'.
LUNG_WINDOW = (-600.0, 1500.0)

# ---- catalog, _restricted/rejected, _restricted/lineage (and the staged records) -----------

#: Catalog columns (typed DICOM attributes keep their DICOM keyword as name).
CATALOG_FIELDS = [
    StructField("sop_uid", StringType()),
    StructField("series_uid", StringType()),
    StructField("study_uid", StringType()),
    StructField("patient_id", StringType()),
    StructField("frame_of_reference_uid", StringType()),
    StructField("SOPClassUID", StringType()),
    StructField("sop_class_name", StringType()),
    StructField("TransferSyntaxUID", StringType()),
    StructField("Modality", StringType()),
    StructField("BodyPartExamined", StringType()),
    StructField("Manufacturer", StringType()),
    StructField("StudyDate", StringType()),
    StructField("SeriesNumber", IntegerType()),
    StructField("InstanceNumber", IntegerType()),
    StructField("AcquisitionNumber", IntegerType()),
    StructField("ImageType", ArrayType(StringType())),
    StructField("Rows", IntegerType()),
    StructField("Columns", IntegerType()),
    StructField("NumberOfFrames", IntegerType()),
    StructField("BitsStored", IntegerType()),
    StructField("PixelRepresentation", IntegerType()),
    StructField("ImagePositionPatient", ArrayType(DoubleType())),
    StructField("ImageOrientationPatient", ArrayType(DoubleType())),
    StructField("PixelSpacing", ArrayType(DoubleType())),
    StructField("SliceThickness", DoubleType()),
    StructField("GantryDetectorTilt", DoubleType()),
    StructField("RescaleSlope", DoubleType()),
    StructField("RescaleIntercept", DoubleType()),
    StructField("KVP", DoubleType()),
    StructField("date_offset_applied", BooleanType()),
    StructField("header_json", StringType()),
]

#: Columns added to the catalog by series assembly.
VOLUME_OUTCOME_FIELDS = [
    StructField("volume_id", StringType()),
    StructField("volume_status", StringType()),
    StructField("volume_reason", StringType()),
]

#: Where the unit came from: only ever in ``_restricted/``.
SOURCE_FIELDS = [
    StructField("source_path", StringType(), False),
    StructField("member", StringType()),
    StructField("content_sha256", StringType()),
]

OUTCOME_FIELDS = [
    StructField("status", StringType(), False),  # "accepted" | "rejected" | "read_message"
    StructField("reason", StringType()),
    StructField("detail", StringType()),
]

PAYLOAD_FIELDS = [
    StructField("pixels", BinaryType()),
    StructField("pixel_dtype", StringType()),
    StructField("read_message", StringType()),  # an LIDC read message, pseudonymized JSON
]

RECORD_SCHEMA = StructType(SOURCE_FIELDS + OUTCOME_FIELDS + CATALOG_FIELDS + PAYLOAD_FIELDS)
CATALOG_COLUMNS = [f.name for f in CATALOG_FIELDS]
REJECTED_COLUMNS = ["source_path", "member", "reason", "detail", "content_sha256"]
LINEAGE_COLUMNS = ["source_path", "member", "content_sha256", "sop_uid", "series_uid", "patient_id"]

#: ``catalog/``: reading with it spares Spark a schema-inference job.
#: The published catalog's schema: reading with it spares Spark a schema-inference job.
CATALOG_SCHEMA = StructType(CATALOG_FIELDS + VOLUME_OUTCOME_FIELDS)


#: ``_restricted/inputs/``: every input file a run listed (an append run does not read those
#: it has seen unchanged).
INPUTS_SCHEMA = StructType(
    [
        StructField("source_path", StringType(), False),
        StructField("size", LongType(), False),
        StructField("modified_ms", LongType(), False),
    ]
)

#: What series assembly says of each instance: joined onto the catalog by ``sop_uid``.
VOLUME_OUTCOME_SCHEMA = StructType(
    [StructField("sop_uid", StringType(), False), *VOLUME_OUTCOME_FIELDS]
)

# ---- reads, nodules: the LIDC readers -----------------------------------------------------

#: ``reads/``: one row per LIDC read message.
READ_SCHEMA = StructType(
    [
        StructField("series_uid", StringType(), False),
        StructField("num_readers", IntegerType(), False),
        StructField("num_marks", IntegerType(), False),
        StructField("num_nodules", IntegerType(), False),
        StructField("unplaced", StringType(), False),  # JSON: [{reader, kind, mark_id, reason}]
        StructField("read_message", StringType(), False),  # pseudonymized JSON
    ]
)
#: ``nodules/``: one row per nodule the readers marked.
NODULE_SCHEMA = StructType(
    [
        StructField("series_uid", StringType(), False),
        StructField("nodule", IntegerType(), False),
        StructField("coordX", DoubleType(), False),
        StructField("coordY", DoubleType(), False),
        StructField("coordZ", DoubleType(), False),
        StructField("diameter_mm", DoubleType()),
        StructField("num_readers", IntegerType(), False),
        StructField("num_nodule_readers", IntegerType(), False),
        StructField("kinds", StringType(), False),  # e.g. "nodule,non_nodule"
        StructField("malignancy_median", DoubleType()),
        StructField("malignancy", IntegerType(), False),  # 1, 0, -1 unknown
        StructField("positive", BooleanType(), False),
        StructField("medians", StringType(), False),  # JSON: characteristic -> median
        StructField("ratings", StringType(), False),  # JSON: characteristic -> ratings
    ]
)

# ---- findings: what FROC matches candidates against ---------------------------------------

#: ``findings/``: the annotated nodules and excluded findings (pseudonymous series UIDs).
FINDINGS_SCHEMA = StructType(
    [
        StructField("series_uid", StringType(), False),
        StructField("coordX", DoubleType(), False),
        StructField("coordY", DoubleType(), False),
        StructField("coordZ", DoubleType(), False),
        StructField("diameter_mm", DoubleType(), False),
        StructField("kind", StringType(), False),  # "nodule" | "excluded"
    ]
)

# ---- candidates: what candidate generation found -------------------------------------------

#: ``candidates/``: one row per generated candidate (world LPS mm, pseudonymous ids).
CANDIDATES_SCHEMA = StructType(
    [
        StructField("series_uid", StringType(), False),
        StructField("patient_id", StringType(), False),
        StructField("split", StringType(), False),
        StructField("coordX", DoubleType(), False),
        StructField("coordY", DoubleType(), False),
        StructField("coordZ", DoubleType(), False),
        StructField("diameter_mm", DoubleType(), False),  # the detector's size estimate
        StructField("score", DoubleType(), False),  # blob response, higher more nodule-like
        StructField("mean_hu", DoubleType(), False),  # of the candidate's core
        StructField("kind", StringType(), False),  # "solid" | "subsolid"
        # 1 hits a nodule (LUNA16's rule), 0 hits none, -1 the series has no label source.
        StructField("label", IntegerType(), False),
    ]
)

# ---- predictions (sparkdl predict --output P) ---------------------------------------------

#: ``P/``: one row per scored patch.
PREDICTION_SCHEMA = StructType(
    [
        StructField("patch_id", StringType()),
        StructField("series_uid", StringType()),
        StructField("patient_id", StringType()),
        StructField("split", StringType()),
        StructField("source", StringType()),
        StructField("center", ArrayType(DoubleType())),
        StructField("label", IntegerType()),
        StructField("probability", FloatType()),
    ]
)

# ---- volumes, patches: the Petastorm datasets ---------------------------------------------

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
            # What the point is: "annotation" (a nodule's centre), "candidate" (listed),
            # "generated" (a candidate sparkdl found) or "sampled" (a negative in the lungs).
            Field("source", np.str_, (), ScalarCodec("StringType"), False),
            # Which label sources name it, comma-separated, the one whose centre it has
            # first: "annotations", "lidc", "candidates", "generated" ("" for sampled
            # negatives and in datasets written before the field existed).
            Field("sources", np.str_, (), ScalarCodec("StringType"), True),
            Field("split", np.str_, (), ScalarCodec("StringType"), False),
        ],
    )


def patch_shape(url: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype of the ``patch`` field of the Petastorm dataset at ``url`` (its
    ``patches/`` folder), from the stored Unischema."""
    import pyarrow.fs as pafs

    from sparkdl.store.metadata import read_schema
    from sparkdl.store.storage import arrow_filesystem

    fs, path = arrow_filesystem(url)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        root = url.rstrip("/").rsplit("/", 1)[0]
        raise InputError(
            f"{root} has no {PATCHES}/: its ingest cut no patch. Patches are cut around "
            "labelled points: ingest again with --annotations and/or --candidates (LUNA16 "
            "CSVs), with the LIDC readers' XML among the inputs, or with candidate generation "
            "on (conf/ingest.yaml candidates:)."
        )
    schema = read_schema(url)
    field = schema.fields.get("patch")
    if field is None or None in field.shape or len(field.shape) != 3:
        raise InputError(
            f"{url} has no fixed-shape 3-D `patch` field. Received fields: "
            f"{sorted(schema.fields)}. Expected sparkdl's patch_schema(size)."
        )
    return tuple(int(n) for n in field.shape if n is not None), np.dtype(field.numpy_dtype)
