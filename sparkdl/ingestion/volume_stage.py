"""The volumes stage: CT instances grouped by series on the executors, assembled into HU volumes.

The array work lives in :mod:`sparkdl.assembly.series`; this module groups the catalog's pixel
records by series, writes ``volumes/`` from the assembling tasks (:mod:`sparkdl.store.writer`,
then Petastorm's ``_common_metadata``) and returns one small outcome row per instance to the
driver. A series staged in one part file is assembled by a task that reads that part itself
(:mod:`sparkdl.ingestion.local_assembly`); the others are grouped through a shuffle.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema

from sparkdl.assembly.series import VolumeOptions, assemble_series
from sparkdl.ingestion.local_assembly import LocalPlan, read_series, spread
from sparkdl.spark import ARROW_BATCH_CONF, session_conf
from sparkdl.store.storage import to_url
from sparkdl.store.tables import VOLUME_OUTCOME_SCHEMA, VolumeSchema
from sparkdl.store.writer import finish_dataset, part_name, write_frame, write_part
from sparkdl.units.volume_file import VOLUME_CLASS_NAMES

_SLICE_COLUMNS = [
    "sop_uid",
    "series_uid",
    "study_uid",
    "patient_id",
    "frame_of_reference_uid",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "Rows",
    "Columns",
    "RescaleSlope",
    "RescaleIntercept",
    "ImageType",
    "SliceThickness",
    "AcquisitionNumber",
    "InstanceNumber",
    "GantryDetectorTilt",
    "NumberOfFrames",
    "pixels",
    "pixel_dtype",
]


def build_volumes(
    spark: SparkSession,
    accepted: DataFrame,
    options: VolumeOptions,
    url: str,
    keep: DataFrame | None = None,
    series_done: Any = None,
    local: LocalPlan | None = None,
) -> DataFrame:
    """Assemble every CT series into HU volumes written to ``url`` (Petastorm).

    ``keep`` holds volume rows of an earlier run (as stored) to write along with the new ones;
    nothing is written when there is no volume at all. Returns one outcome row per CT
    instance (``volume_id``, ``volume_status``, ``volume_reason``). ``series_done``, a Spark
    accumulator, counts the series assembled (for progress). The series of ``local`` are
    assembled by the tasks that read their staged part, the others through a shuffle.

    The slices of a series reach the assembly as one Arrow table, read from the staged parts
    by the task itself (:mod:`sparkdl.ingestion.local_assembly`) or grouped by Spark
    (``applyInArrow``), and the task that assembles a series writes its volumes as a part
    file of its own
    (:mod:`sparkdl.store.writer`): only the small outcome rows go back through Spark. (The
    volumes used to come back as rows, be persisted to disk, and be written by a second job:
    three more copies of every CT.)
    """
    # A volume file's geometry (sparkdl.units.volume_file) rides along; DICOM headers stay behind.
    volume_file = F.when(
        F.col("sop_class_name").isin(*VOLUME_CLASS_NAMES.values()), F.col("header_json")
    )
    slices = accepted.filter(accepted.pixels.isNotNull()).select(
        *_SLICE_COLUMNS, volume_file.alias("volume_file")
    )
    prefix = uuid.uuid4().hex[:8]  # this run's part names never meet a published one's
    folder = to_url(url)
    local = local or LocalPlan([])
    collected = []
    if local.units:
        collected += _assemble_local(spark, local, options, series_done, folder, prefix)
    if not local.complete:
        if local.units:  # the series assembled above stay out of the shuffle
            done = spark.createDataFrame([(s,) for s in sorted(local.series)], "series_uid STRING")
            slices = slices.join(F.broadcast(done), "series_uid", "left_anti")
        # Hash-partitioned by series into a few partitions per core, which the grouping
        # keeps: spark.sql.shuffle.partitions (200) tasks, mostly empty, cost more than the
        # assembly of a small cohort.
        partitions = 2 * spark.sparkContext.defaultParallelism
        collected += (
            slices.repartition(partitions, "series_uid")
            .groupBy("series_uid")
            .applyInArrow(
                lambda table: _assemble(table, options, series_done, folder, prefix),
                VOLUME_OUTCOME_SCHEMA,
            )
            .collect()
        )
    outcomes = spark.createDataFrame([tuple(row) for row in collected], VOLUME_OUTCOME_SCHEMA)
    if keep is not None and not keep.isEmpty():
        # One volume per Arrow batch, so per row group (Spark's default batch is 10,000 rows).
        with session_conf(spark, ARROW_BATCH_CONF, "1"):
            write_frame(keep, folder, prefix + "-kept", _IMAGE_COLUMNS)
    finish_dataset(folder, VolumeSchema)
    return outcomes


def _assemble_local(
    spark: SparkSession,
    local: LocalPlan,
    options: VolumeOptions,
    series_done: Any,
    folder: str,
    prefix: str,
) -> list[Any]:
    """The outcome rows of the ``local`` series: a few tasks per core, each reading the
    staged slices of its units' series itself."""
    units = local.units
    tasks = spread(units, 4 * spark.sparkContext.defaultParallelism)

    def body(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for task in batch.column("id").to_pylist():
                for index in tasks[task]:
                    for table in read_series(units[index], _SLICE_COLUMNS):
                        outcomes = _assemble(table, options, series_done, folder, prefix)
                        yield from outcomes.to_batches()

    planned = spark.range(0, len(tasks), 1, len(tasks))
    return planned.mapInArrow(body, VOLUME_OUTCOME_SCHEMA).collect()


def _assemble(
    table: pa.Table, options: VolumeOptions, series_done: Any, folder: str, prefix: str
) -> pa.Table:
    """One series' slices (an Arrow table) to its outcome rows; its volumes, if any, are
    written to ``folder`` as one part file named by the series."""
    records = _slice_records(table)
    result = assemble_series(records, options)
    if result.volumes:
        series = str(records[0]["series_uid"])
        name = part_name(prefix, hashlib.sha256(series.encode()).hexdigest()[:20])
        batches = (_volume_batch(volume.to_row()) for volume in result.volumes)
        write_part(batches, folder, name, _VOLUME_ARROW, _IMAGE_COLUMNS)
    if series_done is not None:
        series_done.add(1)
    rows = [
        {
            "sop_uid": sop_uid,
            "volume_id": outcome.volume_id,
            "volume_status": outcome.status,
            "volume_reason": outcome.reason,
        }
        for sop_uid, outcome in result.instances.items()
    ]
    return pa.Table.from_pylist(rows, schema=_OUTCOME_ARROW)


def _slice_records(table: pa.Table) -> list[dict[str, Any]]:
    """The slices of one series as ``assemble_series`` takes them: pixels as arrays."""
    records: list[dict[str, Any]] = table.drop_columns(["pixels"]).to_pylist()
    pixels = table.column("pixels").combine_chunks()
    for index, row in enumerate(records):
        # A view of the Arrow buffer: the slice's bytes are not copied on the way in.
        values = np.frombuffer(pixels[index].as_buffer(), dtype=np.dtype(row.pop("pixel_dtype")))
        if row["volume_file"]:
            planes = (int(row["NumberOfFrames"]), int(row["Rows"]), int(row["Columns"]))
            row["pixels"] = values.reshape(planes)
        else:
            row["pixels"] = values.reshape(int(row["Rows"]), int(row["Columns"]))
    return records


def _volume_batch(row: dict[str, Any]) -> pa.RecordBatch:
    """One volume as a one-row batch of the stored (Petastorm-encoded) columns.

    The encoded arrays (about 140 MB at 512² × 260) become Arrow values without a copy:
    ``from_pylist`` copied each into a fresh buffer, about 0.25 s of a 512² series' task
    (``scripts/bench_assembly.py``).
    """
    encoded = dict(zip(VolumeSchema.fields, VolumeSchema.encode_row(row)))
    columns = [_one_value(encoded[field.name], field.type) for field in _VOLUME_ARROW]
    return pa.RecordBatch.from_arrays(columns, schema=_VOLUME_ARROW)


def _one_value(value: Any, kind: pa.DataType) -> pa.Array:
    """A one-value array of ``kind``; bytes of a binary column are wrapped, not copied."""
    if pa.types.is_binary(kind) and isinstance(value, (bytes, bytearray)):
        offsets = pa.py_buffer(np.array([0, len(value)], dtype=np.int32))
        return pa.Array.from_buffers(kind, 1, [None, offsets, pa.py_buffer(value)])
    return pa.array([value], type=kind)


_VOLUME_ARROW = to_arrow_schema(VolumeSchema.as_spark_schema())
_OUTCOME_ARROW = to_arrow_schema(VOLUME_OUTCOME_SCHEMA)
#: Volume columns of image bytes (no dictionary, no statistics).
_IMAGE_COLUMNS = tuple(field.name for field in _VOLUME_ARROW if pa.types.is_binary(field.type))
