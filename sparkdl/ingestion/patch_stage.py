"""The patches stage: patches cut around annotated and candidate points of every volume.

Points come from LUNA16-style CSVs (world mm, keyed to the pseudonymous series UID through the
same UID map as the images); the array work lives in :mod:`sparkdl.patches.extract`. Writes
``patches/`` (:mod:`sparkdl.store.writer`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkdl.deid import remap_uid
from sparkdl.errors import InputError
from sparkdl.geometry import Geometry
from sparkdl.ingestion.candidate_stage import Generation, generated_points, write_candidates
from sparkdl.ingestion.discover import check_inputs_exist
from sparkdl.patches.extract import PatchOptions, make_patch_rows, sample_negatives, series_rng
from sparkdl.patches.points import (
    label_candidates,
    merge_nodules,
    points_from_frame,
    read_points_csv,
)
from sparkdl.store.storage import to_url
from sparkdl.store.tables import VolumeSchema, patch_schema
from sparkdl.store.volume_rows import map_volumes, volume_files
from sparkdl.store.writer import rows_per_group, write_dataset

logger = logging.getLogger(__name__)

#: Row-group size of ``patches/``: a few dozen 32³ patches per group.
PATCH_ROW_GROUP_MB = 2


@dataclass(frozen=True)
class AppendScope:
    """What an append run keeps of the published patches and which volumes it cuts.

    ``keep`` holds earlier patch rows (as stored) written along with the new ones;
    ``only_series`` the volumes to cut; ``other_volumes`` series with a volume published
    earlier, so that their points are not counted as without a volume.
    """

    keep: DataFrame | None = None
    only_series: frozenset[str] | None = None
    other_volumes: frozenset[str] = field(default_factory=frozenset)
    #: Earlier ``candidates/`` rows of the files an append run replaces, written along.
    keep_candidates: DataFrame | None = None


@dataclass(frozen=True)
class Labels:
    """Where the labelled points of an ingest come from: LUNA16-style CSVs (world LPS mm).

    ``annotations``: ``seriesuid,coordX,coordY,coordZ,diameter_mm`` (+ optional
    ``malignancy``), the nodules; ``candidates``: ``seriesuid,coordX,coordY,coordZ,class``,
    candidate points labelled nodule (1) or not (0). Paths are local or any Hadoop path. The
    series UIDs are the original ones: they are mapped through the same keyed UID map as the
    images. Without candidates, negatives are sampled in the lungs.
    """

    annotations: str | None = None
    candidates: str | None = None
    #: LUNA16's ``annotations_excluded.csv``: findings that count neither as hits nor as
    #: false positives in the FROC (``seriesuid,coordX,coordY,coordZ,diameter_mm``).
    excluded: str | None = None

    def __post_init__(self) -> None:
        for name in ("annotations", "candidates", "excluded"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                object.__setattr__(self, name, str(value))

    def __bool__(self) -> bool:
        return bool(self.annotations or self.candidates)

    def check_files(self) -> None:
        """InputError naming a given CSV that does not exist (before any work starts)."""
        for name in ("annotations", "candidates", "excluded"):
            path = getattr(self, name)
            if path is None:
                continue
            try:
                check_inputs_exist([path])
            except InputError:
                raise InputError(
                    f"--{name} file not found: {path}. Pass an existing LUNA16-style CSV."
                ) from None


@dataclass(frozen=True)
class Points:
    """The points to cut patches around, per pseudonymous series UID.

    ``from_candidates``: a candidates file gave the negatives; otherwise negatives are
    sampled in each volume's lungs (``PatchOptions.negative_ratio`` per nodule).
    """

    by_series: dict[str, list[dict[str, Any]]]
    from_candidates: bool
    #: The nodules (one merged positive each, whatever named them), per series.
    nodules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def total(
        self, series: set[str] | frozenset[str] | None = None, *, outside: bool = False
    ) -> int:
        """Points of ``series`` (all when None); with ``outside``, of the other series."""
        return sum(
            len(p)
            for s, p in self.by_series.items()
            if series is None or ((s in series) != outside)
        )


def load_points(
    labels: Labels, key: bytes, lidc: dict[str, list[dict[str, Any]]] | None = None
) -> Points:
    """The labelled points per pseudonymous series UID: one positive per nodule.

    The nodules of the annotations CSV and of the LIDC readers (``lidc``: the positives and
    hard negatives of the read messages among the inputs) are merged, so a nodule both name
    is one positive (:func:`~sparkdl.patches.points.merge_nodules`; the CSV's centre wins).
    With a candidates file (the LUNA16 false-positive-reduction setting) every candidate is
    a point with its own class, so that evaluation can score the candidate list as given
    (FROC); a positive candidate within a nodule's radius takes that nodule's malignancy
    and diameter, and only the nodules no positive candidate covers are added as points of
    their own (:func:`~sparkdl.patches.points.label_candidates`).
    """
    annotations = _points_by_series(labels.annotations, "annotations", key)
    candidates = _points_by_series(labels.candidates, "candidates", key)
    lidc = lidc or {}
    points, nodules = {}, {}
    for series in sorted(set(annotations) | set(lidc) | set(candidates)):
        merged = merge_nodules(annotations.get(series, []), lidc.get(series, []))
        nodules[series] = [p for p in merged if p["label"] == 1]
        found = candidates.get(series)
        points[series] = label_candidates(merged, found) if found else merged
    return Points(points, labels.candidates is not None, nodules)


def findings_rows(
    points: Points,
    labels: Labels,
    key: bytes,
    lidc_excluded: dict[str, list[tuple[float, float, float, float]]] | None = None,
) -> list[tuple[str, float, float, float, float, str]]:
    """The findings FROC evaluation matches candidates against, pseudonymous: every nodule,
    one per nodule whatever named it (``"nodule"``, diameter -1 when unknown), and every
    excluded finding (``"excluded"``: LUNA16's ``annotations_excluded.csv``, and the LIDC
    readers' findings below the ``lidc:`` rule)."""
    rows: list[tuple[str, float, float, float, float, str]] = []
    for series, found in sorted(points.nodules.items()):
        for nodule in found:
            x, y, z = (float(v) for v in nodule["center_xyz"])
            rows.append((series, x, y, z, float(nodule.get("diameter_mm", -1.0)), "nodule"))
    rows += excluded_rows(labels, key)
    for series, marked in sorted((lidc_excluded or {}).items()):
        rows += [(series, x, y, z, d, "excluded") for x, y, z, d in marked]
    return rows


def excluded_rows(labels: Labels, key: bytes) -> list[tuple[str, float, float, float, float, str]]:
    """The findings of ``--excluded`` (LUNA16's annotations_excluded.csv), pseudonymous."""
    if labels.excluded is None:
        return []
    frame = read_points_csv(labels.excluded, "annotations")
    return [
        (
            remap_uid(key, str(row.seriesuid)),
            float(row.coordX),
            float(row.coordY),
            float(row.coordZ),
            float(row.diameter_mm),
            "excluded",
        )
        for row in frame.itertuples(index=False)
    ]


def _points_by_series(
    path: str | None, kind: Literal["annotations", "candidates"], key: bytes
) -> dict[str, list[dict[str, Any]]]:
    """The points of one LUNA16 CSV per pseudonymous series UID (same keyed map as the
    images); none without a file."""
    if path is None:
        return {}
    frame = read_points_csv(path, kind)
    return {
        remap_uid(key, str(uid)): points_from_frame(rows, kind)
        for uid, rows in frame.groupby("seriesuid", sort=True)
    }


def build_patches(
    spark: SparkSession,
    volumes_url: str,
    points: Points,
    options: PatchOptions,
    key: bytes,
    url: str,
    scope: AppendScope | None = None,
    generation: Generation | None = None,
) -> dict[str, Any]:
    """Cut patches around ``points`` in every volume at ``volumes_url`` into ``url``.

    ``scope`` (append runs) limits the volumes cut and adds the earlier rows kept;
    ``generation`` finds candidates in every volume first (:mod:`sparkdl.ingestion.candidate_stage`)
    and writes them to its folder. Returns what this run did: patches written, candidates
    generated, points that gave none.

    Eight parameters: the stage's inputs, each one a separate decision of the job.
    """
    scope = scope or AppendScope()
    files = volume_files(volumes_url)
    if not files:  # no volume was assembled
        return {
            "patches_written": 0,
            "points_outside_volume": 0,
            "points_without_volume": points.total(scope.other_volumes, outside=True),
        }
    series = spark.read.parquet(to_url(volumes_url)).select("series_uid").distinct()
    known = {row["series_uid"] for row in series.collect()}  # one small column, on executors
    shared = spark.sparkContext.broadcast(points.by_series)
    skipped = spark.sparkContext.accumulator(0)
    generated = spark.sparkContext.accumulator(0)
    sample = not points.from_candidates and generation is None
    schema = patch_schema(options.size)
    spark_schema = schema.as_spark_schema()

    def cut(volumes: Iterator[Any]) -> Iterator[Any]:
        counters = (skipped, generated)
        return _cut_batches(volumes, shared.value, options, key, sample, counters, generation)

    # Each task reads its volumes itself (sparkdl.store.volume_rows): through Spark, a 512²
    # volume took seconds to reach Python (and through the RDD API, pickled on the JVM heap,
    # volumes ran a 4 GB driver out of memory).
    frame = map_volumes(spark, volumes_url, files, cut, spark_schema, scope.only_series)
    frame = frame.persist(StorageLevel.DISK_ONLY)
    total_new = frame.count()
    if scope.keep is not None:
        keep = scope.keep
        if "sources" not in keep.columns:  # published before the column existed
            keep = keep.withColumn("sources", F.lit(None).cast("string"))
        frame = keep.select(*frame.columns).unionByName(frame)
    total = total_new + (scope.keep.count() if scope.keep is not None else 0)
    if total:
        # Several files (so several row groups) even for small sets: shards are row groups.
        num_files = max(min(8, total // 256), min(4, total))
        group = rows_per_group(schema, PATCH_ROW_GROUP_MB)
        write_dataset(frame, schema, url, rows_per_group=group, num_files=num_files)
    frame.unpersist()
    shared.unpersist()
    if generation is not None:
        _finish_candidates(generation, scope)
    return {
        "patches_written": total,
        "candidates_generated": int(generated.value),
        "points_outside_volume": int(skipped.value),
        "points_without_volume": points.total(known | scope.other_volumes, outside=True),
    }


def _cut_batches(
    batches: Iterator[Any],
    points: dict[str, list[dict[str, Any]]],
    options: PatchOptions,
    key: bytes,
    sample_negatives: bool,
    counters: tuple[Any, Any],
    generation: Generation | None,
) -> Iterator[Any]:
    """``mapInArrow`` body: volume rows in, their patch rows out (Petastorm-encoded); with
    ``generation``, the candidates of each volume found first and written at the end.
    ``counters``: Spark accumulators of the points outside their volume and the candidates."""
    import pyarrow as pa
    from pyspark import TaskContext
    from pyspark.sql.pandas.types import to_arrow_schema

    skipped, generated = counters
    schema = patch_schema(options.size)
    arrow_schema = to_arrow_schema(schema.as_spark_schema())
    candidate_rows: list[dict[str, Any]] = []
    for batch in batches:
        for volume_row in batch.to_pylist():
            decoded = VolumeSchema.decode_row(volume_row)
            mine = points.get(volume_row["series_uid"], [])
            if generation is not None:
                mine, found = generated_points(decoded, mine, generation, key)
                candidate_rows += found
                generated.add(len(found))
            elif sample_negatives:
                mine = list(mine) + _sampled_negatives(decoded, mine, options)
            rows, outside = make_patch_rows(decoded, mine, options, key)
            skipped.add(outside)
            if rows:
                encoded = [dict(zip(schema.fields, schema.encode_row(r))) for r in rows]
                yield pa.RecordBatch.from_pylist(encoded, schema=arrow_schema)
    if generation is not None and candidate_rows:
        context = TaskContext.get()
        write_candidates(
            candidate_rows, generation, f"{context.partitionId() if context else 0:05d}"
        )


def _finish_candidates(generation: Generation, scope: AppendScope) -> None:
    """After the tasks: the kept rows of an append run written along, failed attempts gone."""
    from sparkdl.store.writer import clean, write_frame

    if scope.keep_candidates is not None and not scope.keep_candidates.isEmpty():
        write_frame(scope.keep_candidates, generation.folder, generation.prefix + "-kept", ())
    clean(generation.folder)


def _sampled_negatives(
    volume: dict[str, Any], points: list[dict[str, Any]], options: PatchOptions
) -> list[dict[str, Any]]:
    """Without a candidates file: ``negative_ratio`` lung points per nodule, away from all."""
    positives = [p for p in points if p["label"] == 1]
    if not positives:
        return []
    avoid = [(p["center_xyz"], max(float(p.get("diameter_mm", -1)), 0.0) / 2) for p in positives]
    centers = sample_negatives(
        volume["volume"],
        Geometry.of(volume),
        avoid,
        options.negative_ratio * len(positives),
        series_rng(str(volume["series_uid"])),
        margin_mm=options.min_negative_distance_mm,
    )
    return [
        {"center_xyz": c, "label": 0, "malignancy": -1, "diameter_mm": -1.0, "source": "sampled"}
        for c in centers
    ]
