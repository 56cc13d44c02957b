"""Series assembled by the tasks that read their staged slices: the plan, the reading, and
the same dataset as through the shuffle.

The plan and the reading are checked on staged parts written here by sparkdl's own writer;
the end-to-end case (slow) ingests one cohort both ways, with a series split over folders and
a duplicated instance, and compares every table row for row.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql.pandas.types import to_arrow_schema

from sparkdl.ingestion import volume_stage
from sparkdl.ingestion.discover import pack_partitions
from sparkdl.ingestion.local_assembly import LocalPlan, Unit, plan_local, read_series, spread
from sparkdl.ingestion.read_stage import BATCH_RECORDS, Placed
from sparkdl.store.tables import RECORD_SCHEMA
from sparkdl.store.writer import write_part
from sparkdl.units.records import InputFile

MB = 1024**2
ROOT = Path(__file__).resolve().parents[2]


def test_small_folders_stay_whole_and_a_large_one_is_cut_into_consecutive_runs() -> None:
    files = [InputFile(f"/in/a/{i:03d}.dcm", MB) for i in range(10)]
    files += [InputFile(f"/in/b/{i:03d}.dcm", MB) for i in range(10)]
    files += [InputFile(f"/in/c/{i:03d}.dcm", MB) for i in range(100)]
    bins = pack_partitions(list(reversed(files)), 6)  # a bin's share: 20 MB
    packed = [f.path for b in bins for f in b]
    assert sorted(packed) == sorted(f.path for f in files)
    for folder in ("/in/a/", "/in/b/"):
        assert sum(any(f.path.startswith(folder) for f in b) for b in bins) == 1
    runs = [[f.path for f in b if f.path.startswith("/in/c/")] for b in bins]
    runs = [run for run in runs if run]
    assert len(runs) == 5 and all(16 <= len(run) <= 24 for run in runs)
    for run in runs:  # consecutive files: a run is a slice of the folder's sorted listing
        first = int(Path(run[0]).stem)
        assert [int(Path(p).stem) for p in run] == list(range(first, first + len(run)))


def test_the_plan_groups_series_by_their_parts_and_leaves_interleaved_ones_to_the_shuffle() -> None:
    staged = {
        "alone": {"p1": Placed(200, 200)},
        "localizer": {"p1": Placed(2, 2)},
        "split": {"p2": Placed(150, 150), "p3": Placed(100, 100)},
        "mixed": {"p4": Placed(10, 256), "p5": Placed(10, 256)},  # reads 512 for 20
    }
    copies = {"split": [("/in/s/7.dcm", "")]}
    plan = plan_local([staged], copies)
    assert [(u.parts, u.series) for u in plan.units] == [
        (("p2", "p3"), {"split": 250}),
        (("p1",), {"alone": 200, "localizer": 2}),
    ]
    assert plan.units[0].copies == [("/in/s/7.dcm", "")]
    assert plan.series == {"alone", "localizer", "split"} and not plan.complete
    # A series staged again in an append run (a second table) lies in both tables' parts.
    again = plan_local([{"alone": {"p1": Placed(200, 200)}}, {"alone": {"r1": Placed(5, 5)}}], {})
    assert [(u.parts, u.series) for u in again.units] == [(("p1", "r1"), {"alone": 205})]
    assert again.complete
    assert plan_local([staged], None) == LocalPlan([])  # copies unknown: all shuffled
    one_batch = {"mixed": {"p4": Placed(10, 10 + BATCH_RECORDS)}}
    assert plan_local([one_batch], {}).complete  # one batch of others is read, not shuffled


def test_units_are_dealt_into_a_few_balanced_tasks() -> None:
    units = [Unit((f"p{i}",), {f"s{i}": slices}) for i, slices in enumerate([300, 5, 200, 100, 90])]
    tasks = spread(units, 2)
    assert sorted(i for task in tasks for i in task) == [0, 1, 2, 3, 4]
    loads = sorted(sum(units[i].slices for i in task) for task in tasks)
    assert loads == [305, 390]  # LPT: 300 + 90 | 200 + 100 + 5
    assert spread(units, 8) == [[0], [2], [3], [4], [1]]  # never more tasks than units
    assert spread([], 4) == []


def _record(sop: str, series: str, path: str, **changes: Any) -> dict[str, Any]:
    record = {
        "source_path": path,
        "member": None,
        "status": "accepted",
        "sop_uid": sop,
        "series_uid": series,
        "sop_class_name": "CT Image Storage",
        "pixels": sop.encode() * 4,
        "pixel_dtype": "<i2",
    }
    return {**record, **changes}


def _stage(folder: Path, name: str, batches: list[list[dict[str, Any]]]) -> str:
    schema = to_arrow_schema(RECORD_SCHEMA)
    tables = (pa.RecordBatch.from_pylist(rows, schema=schema) for rows in batches)
    write_part(tables, str(folder), name, schema, ("pixels",))
    return str(folder / name)


def test_a_series_is_read_from_its_parts_without_copies_rejects_or_other_series(
    tmp_path: Path,
) -> None:
    first = _stage(
        tmp_path,
        "part-records-00000.parquet",
        [[_record(f"s1.{i}", "S1", f"/in/s1/{i}.dcm") for i in range(3)]],
    )
    second = _stage(
        tmp_path,
        "part-records-00001.parquet",
        [
            [_record(f"s1.{i}", "S1", f"/in/s1/{i}.dcm") for i in range(3, 5)]
            + [_record("s1.3", "S1", "/in/copy/3.dcm")]  # a duplicate copy
            + [_record("s1.x", "S1", "/in/s1/x.dcm", status="rejected", pixels=None)]
            + [_record("s1.sr", "S1", "/in/s1/sr.dcm", pixels=None)],  # no image
            [_record(f"s2.{i}", "S2", f"/in/s2/{i}.dcm") for i in range(2)],
        ],
    )
    columns = ["sop_uid", "series_uid", "pixels", "pixel_dtype"]
    unit = Unit((first, second), {"S1": 6}, [("/in/copy/3.dcm", "")])
    (table,) = list(read_series(unit, columns))
    assert sorted(table.column("sop_uid").to_pylist()) == [f"s1.{i}" for i in range(5)]
    assert table.column_names == [*columns, "volume_file"]
    assert table.column("volume_file").null_count == 5  # DICOM slices: no volume-file header
    assert [t.num_rows for t in read_series(Unit((second,), {"S2": 2}), columns)] == [2]
    # Only copies: nothing to assemble, and nothing yielded.
    assert (
        list(
            read_series(
                Unit((second,), {"S2": 2}, [("/in/s2/0.dcm", ""), ("/in/s2/1.dcm", "")]), columns
            )
        )
        == []
    )
    with pytest.raises(RuntimeError, match="fewer slices than planned"):
        list(read_series(Unit((first,), {"S1": 4}), columns))


def _compare_datasets() -> Any:
    spec = importlib.util.spec_from_file_location(
        "compare_datasets", ROOT / "scripts/compare_datasets.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_same_dataset_with_and_without_the_shuffle(
    spark, tmp_path: Path, deid_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sparkdl import Labels
    from sparkdl.ingestion.config import IngestConfig
    from sparkdl.ingestion.job import ingest
    from sparkdl.synth import synthesize_cohort

    synthesize_cohort(tmp_path / "cohort", num_patients=2, seed=3)
    images = tmp_path / "cohort" / "dicom"
    folders = sorted({p.parent for p in images.rglob("*") if p.is_file()}, key=str)
    biggest = max(folders, key=lambda f: len(list(f.iterdir())))
    moved = tmp_path / "cohort" / "dicom" / "late"  # half a series in another folder
    moved.mkdir()
    for path in sorted(biggest.iterdir())[::2]:
        shutil.move(path, moved / path.name)
    shutil.copy(next(iter(sorted(moved.iterdir()))), biggest / "copy.dcm")  # a duplicate
    labels = Labels(annotations=str(tmp_path / "cohort" / "annotations.csv"))
    plans: list[LocalPlan] = []
    assemble_local = volume_stage._assemble_local

    def spy(spark: Any, local: LocalPlan, *args: Any) -> list[Any]:
        plans.append(local)
        return assemble_local(spark, local, *args)

    monkeypatch.setattr(volume_stage, "_assemble_local", spy)
    outputs = {}
    for local in (True, False):
        outputs[local] = tmp_path / f"out_{local}"
        config = IngestConfig(local_assembly=local)
        manifest = ingest(
            [str(images)], str(outputs[local]), labels=labels, config=config, spark=spark
        )
        assert manifest["rejected_by_reason"].get("duplicate_instance") == 1
    (plan,) = plans  # the shuffle-only run plans nothing
    assert plan.complete and any(len(unit.parts) > 1 for unit in plan.units)
    assert any(unit.copies for unit in plan.units)
    assert _compare_datasets().compare(outputs[True], outputs[False]) == []
