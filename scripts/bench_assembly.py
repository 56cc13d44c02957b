"""The task that assembles one CT series (``volume_stage._assemble``): CPU seconds, two ways.

``before``: each slice's HU in float64, rounded and clipped to int16
(``hu_to_int16(to_hounsfield(...))``), and the encoded volume copied into its Arrow batch
(``RecordBatch.from_pylist``), as sparkdl did until issue 27; ``after``: whole rescales in
integer arithmetic (:func:`sparkdl.geometry.stored_to_int16_hu`) and the encoded bytes
wrapped, not copied. Both write the same Parquet part (checked: equal volumes).

Series: the real LIDC-IDRI-0002 series (261 × 512², ``../shared/data/lidc-idri``, skipped when
absent) and a synthetic one of ``--slices`` × 512² (uint16, slope 1, intercept -1024, like
most CT). The records are made once (parse and de-identification, as the read stage does);
then each way runs ``--repeat`` times, alternating, in this process, after a warm-up run
(the first Parquet write of a process pays for its buffers). CPU: ``time.process_time``, the
median.

    .venv/bin/python scripts/bench_assembly.py [--slices 300] [--repeat 3] [--work DIR]

Measured on 2 shared cores (load average 0.8), Python 3.11, ``--repeat 5``:

| series | slices | step | before CPU s | after CPU s | after ÷ before |
|---|---|---|---|---|---|
| LIDC-IDRI-0002 (real) | 261 | assemble_series | 0.200 | 0.077 | 0.39 |
| LIDC-IDRI-0002 (real) | 261 | volume batch | 0.238 | 0.225 | 0.95 |
| LIDC-IDRI-0002 (real) | 261 | whole task | 1.356 | 0.796 | 0.59 |
| synthetic 512² | 300 | assemble_series | 0.198 | 0.094 | 0.47 |
| synthetic 512² | 300 | volume batch | 0.253 | 0.244 | 0.96 |
| synthetic 512² | 300 | whole task | 1.699 | 0.819 | 0.48 |

The whole task gains more than its two steps. One run that kept the copied batch with the
integer HU (LIDC, 5 runs each, medians): before 1.12 s, integer HU only 1.06 s, both 0.81 s;
so the wrapped batch saves ~0.25 s in the task though not alone (a guess: the
copied 140 MB batch was fresh memory the Parquet writer then read; page faults count as CPU).
Whole-task medians are not steady: two earlier runs that timed the whole task alone gave
0.59–0.91× and 0.73–1.24× (synthetic after slower); the step rows are. The rest of the task
is the Parquet part (zstd, ~0.45 s) and encoding the volume (``np.save``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql.pandas.types import to_arrow_schema

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sparkdl import geometry  # noqa: E402
from sparkdl.assembly import slices  # noqa: E402
from sparkdl.assembly.options import VolumeOptions  # noqa: E402
from sparkdl.assembly.series import assemble_series  # noqa: E402
from sparkdl.deid import DeidOptions  # noqa: E402
from sparkdl.ingestion import volume_stage  # noqa: E402
from sparkdl.store.tables import RECORD_SCHEMA, VolumeSchema  # noqa: E402
from sparkdl.units.archives import Limits  # noqa: E402
from sparkdl.units.records import InputFile, Task, file_records  # noqa: E402

LIDC = ROOT.parent / "shared" / "data" / "lidc-idri" / "LIDC-IDRI-0002"

#: What is timed: stacking the slices in int16 HU (``assemble_series``), the volume row as
#: its Arrow batch, and the whole task (these two, decoding the records, the Parquet part).
STEPS = ("assemble_series", "volume batch", "whole task")


def _float_hu(self: slices.Slice) -> tuple[np.ndarray, int]:
    return geometry.hu_to_int16(self.hu())


def _copied_batch(row: dict[str, Any]) -> pa.RecordBatch:
    encoded = dict(zip(VolumeSchema.fields, VolumeSchema.encode_row(row)))
    return pa.RecordBatch.from_pylist([encoded], schema=volume_stage._VOLUME_ARROW)


@contextmanager
def _before() -> Any:
    """The assembly task as it was: float HU, a copied batch."""
    saved = slices.Slice.hu_int16, volume_stage._volume_batch
    slices.Slice.hu_int16 = _float_hu  # type: ignore[method-assign]
    volume_stage._volume_batch = _copied_batch
    try:
        yield
    finally:
        slices.Slice.hu_int16, volume_stage._volume_batch = saved  # type: ignore[method-assign]


def _slice_table(records: list[dict[str, Any]]) -> pa.Table:
    """The volume stage's input for one series, as ``build_volumes`` selects it."""
    table = pa.Table.from_pylist(records, schema=to_arrow_schema(RECORD_SCHEMA))
    table = table.filter(pc.is_valid(table["pixels"])).select(volume_stage._SLICE_COLUMNS)
    return table.append_column("volume_file", pa.nulls(len(table), pa.string()))


def lidc_series() -> pa.Table | None:
    if not LIDC.is_dir():
        return None
    task = Task(key=os.urandom(32), deid=DeidOptions(), limits=Limits())
    files = sorted(LIDC.rglob("*.dcm"))
    records = [r for f in files for r in file_records(InputFile(str(f), f.stat().st_size), task)]
    return _slice_table(records)


def synthetic_series(num_slices: int) -> pa.Table:
    """A 512² axial series with CT noise, stored as uint16 with slope 1, intercept -1024."""
    rng = np.random.default_rng(0)
    records = []
    for k in range(num_slices):
        hu = rng.normal(-700.0, 300.0, size=(512, 512))
        stored = np.clip(np.rint(hu + 1024.0), 0, 4095).astype(np.uint16)
        records.append(
            {
                "sop_uid": f"2.25.77.{k}",
                "series_uid": "2.25.77",
                "study_uid": "2.25.78",
                "patient_id": "pseudo-1",
                "frame_of_reference_uid": "2.25.79",
                "ImagePositionPatient": [-180.0, -180.0, -1.25 * k],
                "ImageOrientationPatient": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
                "PixelSpacing": [0.7, 0.7],
                "Rows": 512,
                "Columns": 512,
                "RescaleSlope": 1.0,
                "RescaleIntercept": -1024.0,
                "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
                "SliceThickness": 1.25,
                "AcquisitionNumber": 1,
                "InstanceNumber": k + 1,
                "GantryDetectorTilt": None,
                "NumberOfFrames": None,
                "pixels": stored.tobytes(),
                "pixel_dtype": "<u2",
                "status": "accepted",
            }
        )
    schema = to_arrow_schema(RECORD_SCHEMA)
    rows = [{name: record.get(name) for name in schema.names} for record in records]
    return _slice_table(rows)


def _run(table: pa.Table, records: list[dict[str, Any]], folder: Path) -> tuple[list[float], Any]:
    """CPU seconds of the stack (``assemble_series``), the batch, the whole task; the volume
    the task stored."""
    start = time.process_time()
    result = assemble_series(records, VolumeOptions())
    stacked = time.process_time() - start
    row = result.volumes[0].to_row()
    start = time.process_time()
    volume_stage._volume_batch(row)
    batched = time.process_time() - start
    shutil.rmtree(folder, ignore_errors=True)
    start = time.process_time()
    volume_stage._assemble(table, VolumeOptions(), None, folder.as_uri(), "bench")
    whole = time.process_time() - start
    (part,) = folder.glob("part-*.parquet")
    stored = VolumeSchema.decode_row(pq.read_table(part).to_pylist()[0])
    return [stacked, batched, whole], stored["volume"]


def measure(table: pa.Table, repeat: int, work: Path) -> dict[str, list[float]]:
    """Median CPU seconds of each step, before and after; the stored volumes must be equal."""
    records = volume_stage._slice_records(table)
    _run(table, records, work / "warm-up")
    spent: dict[str, list[list[float]]] = {"before": [], "after": []}
    volumes: dict[str, Any] = {}
    ways: list[tuple[str, Callable[[], Any]]] = [("before", _before), ("after", nullcontext)]
    for _ in range(repeat):
        for name, way in ways:
            with way():
                seconds, volumes[name] = _run(table, records, work / name)
            spent[name].append(seconds)
    if not np.array_equal(volumes["before"], volumes["after"]):
        raise AssertionError("the two ways stored different volumes")
    return {name: [statistics.median(step) for step in zip(*runs)] for name, runs in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_assembly"))
    args = parser.parse_args()
    print("| series | slices | step | before CPU s | after CPU s | after ÷ before |")
    print("|---|---|---|---|---|---|")
    real = lidc_series()
    if real is None:
        print("| LIDC-IDRI-0002 (real) | absent (no ../shared/data/lidc-idri) | | | | |")
    series = [("LIDC-IDRI-0002 (real)", real)] if real is not None else []
    series.append(("synthetic 512²", synthetic_series(args.slices)))
    for name, table in series:
        medians = measure(table, args.repeat, args.work)
        for index, step in enumerate(STEPS):
            before, after = medians["before"][index], medians["after"][index]
            print(
                f"| {name} | {len(table)} | {step} | {before:.3f} | {after:.3f} | "
                f"{after / before:.2f} |"
            )
    shutil.rmtree(args.work, ignore_errors=True)
    sys.stdout.flush()
    os._exit(0)  # pyarrow's threads may abort an ordinary interpreter exit here


if __name__ == "__main__":
    main()
