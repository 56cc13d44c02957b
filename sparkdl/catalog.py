"""The Spark schemas of ingest's tables: the staging records, the catalog, rejected, lineage.

One record per input unit is produced on the executors (:data:`RECORD_SCHEMA`); the
published tables are projections of it, so their columns are declared here once.
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    StructType,
)

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

#: The published catalog's schema: reading with it spares Spark a schema-inference job.
CATALOG_SCHEMA = StructType(CATALOG_FIELDS + VOLUME_OUTCOME_FIELDS)
