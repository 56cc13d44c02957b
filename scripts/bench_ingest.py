"""Ingest speed: sparkdl on Spark vs a one-process pydicom + dicognito loop, and where the CPU goes.

One run, four parts, one markdown table each (the machine's cores and load average with them):

* ``a``: ``sparkdl ingest INPUT --output OUT --export-dicom --master local[2]`` as a child
  process (the CLI, so JVM start and imports count): whole-process wall time, files/s, and the
  ingest's own ``total_s`` from ``manifest.json``. The key comes from ``SPARKDL_DEID_KEY``,
  made with ``secrets.token_hex(32)`` per run and never printed or written.
* ``b``: the loop a data engineer would write, as a child process: for every file,
  ``pydicom.dcmread`` → ``dicognito.anonymizer.Anonymizer().anonymize(ds)`` (one anonymizer for
  the run, so pseudonyms stay consistent) → ``ds.save_as(OUT/same relative path)``; files
  that fail (not DICOM) are counted. Whole-process wall time, files/s, and sparkdl (a) ÷ loop.
  Then the same-outputs loop (issue 27): the plain loop plus what sparkdl's volumes hold,
  done the plain way: every image's HU as int16 kept per series and size, each series sorted
  along its normal and saved with ``np.save``; and sparkdl (a) ÷ that loop.
* ``c``: CPU per instance (``time.process_time``, this process, in chunks of 32 instances) of
  each step of sparkdl's executor path, ``sparkdl.units.parse._process``, on up to ``--instances``
  files of the cohort held in memory, each step timed on its own with the module's own
  functions, in the pipeline's order on the same datasets (read → checks → pixel decode →
  de-identification → catalog fields → header JSON → export write); the whole
  ``parse.process_instance`` call on the same bytes; and de-identification alone on freshly
  read datasets of the accepted instances: sparkdl's ``deidentify`` vs dicognito's
  ``anonymize`` (same datasets, same pydicom settings), and their ratio. One more row times
  ``records._stage_partition`` (the parse task's body: open and read the file, sha256,
  ``process_instance``, the exported file and the records' Parquet part written) over the
  same files without Spark, CPU and wall per file: what a parse task would cost if Spark
  added nothing.
* ``d``: ``sparkdl.ingest(...)`` in this process on a ``get_spark("local[2]")`` session with
  the Spark event log on: the seconds of each stage (``manifest.json`` ``timings``), the
  number of Spark jobs the ingest ran (``statusTracker().getJobIdsForGroup(None)`` before and
  after; sparkdl sets no job group), and from the event log (read after ``spark.stop()``)
  each job's tasks, duration, shuffle bytes written, operators and call site, each job put in
  the stage whose time window (the stage durations laid end to end from the call) holds its
  submission time. A warm-up ingest of 8 files runs first in the session (not reported), so
  the first cohort does not alone carry the Python workers' start and imports.
* ``e``: series assembly through a Spark shuffle (``local_assembly: false``) vs by the tasks
  that read the staged slices (the default), in this process on one ``local[2]`` session
  after the same warm-up, each cohort ingested both ways one after the other: the stages'
  seconds, and the CPU seconds of the whole process tree (driver, JVM, Python workers; from
  ``/proc``) per ingest.

Cohorts: ``sparkdl synth`` at 128² (default 28 patients, seed 0: 5,058 files) and at 512²
(default 5 patients: 1,035 files), with ``--copies-512 K`` K copies of the 512² cohort (new
UIDs and patient ids each: 10 copies, 10,350 files), and the real LIDC-IDRI series under
``../shared/data/lidc-idri`` when present (a note says when it is skipped).

    .venv/bin/pip install -r scripts/bench-requirements.txt    # dicognito, for parts b and c
    .venv/bin/python scripts/bench_ingest.py [--patients-128 28] [--patients-512 5] [--seed 0]
        [--copies-512 K] [--lidc DIR|none] [--lidc-files N] [--instances 500]
        [--only a,b,c,d,e] [--work DIR]
    .venv/bin/python scripts/bench_ingest.py --quick    # smoke run (~5 min on 2 busy cores):
        # 1 patient per synth cohort (387 files), the first 20 LIDC slices, 40 instances in c

With ``--work DIR`` the cohorts are kept there and reused by the next run (outputs are removed).
The machine is shared: wall times move with the load, CPU times (part c) much less.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench_cohorts import cached_synth, copied_cohort

ROOT = Path(__file__).resolve().parents[1]
LIDC = ROOT.parent / "shared" / "data" / "lidc-idri"
MASTER = "local[2]"
PARTS = ("a", "b", "c", "d", "e")
MB = 1024**2
CHUNK = 32  # instances per timed pass in part c (bounds the memory of held datasets)

T = TypeVar("T")
U = TypeVar("U")

#: Part c: (key, what is timed) in the order ``parse._process`` runs them.
STEPS = (
    ("read", "read: `parse._read` (pydicom.dcmread of the bytes)"),
    ("checks", "checks: `parse._check` + `_is_volume_candidate`"),
    ("decode", "pixel decode: `parse._decode_pixels` + tobytes (CT slices)"),
    ("deid", "de-identification: `deid.deidentify`"),
    ("export", "export write: `encoding.to_part10`"),
    ("catalog", "catalog fields: `parse.catalog_fields`"),
    ("header", "header JSON: `header_json.header_json`"),
)
#: Manifest timings in the order ``ingestion.ingest`` runs the stages; jobs after them: commit.
STAGES = ("list_s", "parse_deid_s", "volumes_s", "patches_s", "write_s")


@dataclass(frozen=True)
class Cohort:
    name: str
    path: Path  # the ingest input: a folder
    files: int  # regular files under it
    bytes: int


@dataclass
class Cost:
    """CPU seconds spent by one step and the number of instances it ran on."""

    cpu_s: float = 0.0
    n: int = 0

    def ms(self) -> float:
        return 1000 * self.cpu_s / self.n if self.n else float("nan")


@dataclass
class StepResult:
    sampled: int
    costs: dict[str, Cost]
    whole: Cost
    accepted_whole: int
    sha256: Cost
    deid_fresh: Cost
    dicognito: Cost | None
    body_cpu: Cost
    body_wall: Cost
    dicognito_failed: int = 0
    #: The same slices decoded the general way (``Dataset.pixel_array``), as before the fast path.
    decode_general: Cost = field(default_factory=Cost)


@dataclass
class JobCount:
    cohort: Cohort
    manifest: dict[str, Any]
    t_call: float
    job_ids: set[int]
    events: dict[int, dict[str, Any]] = field(default_factory=dict)


# -- helpers ---------------------------------------------------------------------------------


def regular_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def sparkdl_command() -> list[str]:
    cli = Path(sys.executable).with_name("sparkdl")
    return [str(cli)] if cli.exists() else [sys.executable, "-m", "sparkdl"]


def redact(text: str, key: str) -> str:
    return text.replace(key, "<key>")


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f}"


def timed(cost: Cost, fn: Callable[[T], U], items: Sequence[T]) -> list[U]:
    """``fn`` over ``items``, its CPU time added to ``cost``."""
    start = time.process_time()
    out = [fn(item) for item in items]
    cost.cpu_s += time.process_time() - start
    cost.n += len(items)
    return out


def dicognito_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("dicognito")
    except Exception:  # noqa: BLE001 - not installed
        return None


# -- cohorts ---------------------------------------------------------------------------------


def cohort_of(name: str, path: Path) -> Cohort:
    files = regular_files(path)
    return Cohort(name, path, len(files), sum(f.stat().st_size for f in files))


def synth_cohort(work: Path, patients: int, seed: int, image_size: int) -> Cohort:
    """``sparkdl synth`` into ``work`` (reused when a complete one with these settings is there)."""
    out = work / f"synth_{image_size}_p{patients}_s{seed}"
    seconds = cached_synth(
        out, "--patients", str(patients), "--seed", str(seed), "--image-size", str(image_size)
    )
    if seconds is not None:
        print(f"synth {image_size}²: {patients} patients in {seconds:.0f} s", flush=True)
    return cohort_of(f"synth {image_size}² ({patients} patients)", out / "dicom")


def copies_cohort(work: Path, patients: int, seed: int, copies: int) -> Cohort:
    """``copies`` copies of the 512² synth cohort, each a new set of patients (new UIDs)."""
    source = synth_cohort(work, patients, seed, 512)
    out = work / f"copies_512_p{patients}_s{seed}_x{copies}"
    seconds = copied_cohort(source.path, out, copies)
    if seconds is not None:
        print(f"{copies} copies of the 512² cohort in {seconds:.0f} s", flush=True)
    return cohort_of(f"synth 512² ({patients} patients × {copies} copies)", out / "dicom")


def lidc_cohort(work: Path, source: Path, num_files: int) -> Cohort | None:
    """The real LIDC series: the folder itself, or a copy of its first ``num_files`` .dcm."""
    if not source.is_dir():
        print(f"note: no LIDC-IDRI data at {source}: that cohort is skipped", flush=True)
        return None
    if num_files <= 0:
        return cohort_of("LIDC-IDRI-0002 (real, 512²)", source)
    subset = work / f"lidc_{num_files}"
    shutil.rmtree(subset, ignore_errors=True)
    for path in sorted(source.rglob("*.dcm"))[:num_files]:
        target = subset / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return cohort_of(f"LIDC-IDRI-0002 (real, first {num_files} slices)", subset)


# -- part a: the CLI on local[2] ---------------------------------------------------------------


def part_a(cohort: Cohort, out: Path, key: str) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        *sparkdl_command(),
        "ingest",
        str(cohort.path),
        "--output",
        str(out),
        "--export-dicom",
        "--master",
        MASTER,
    ]
    env = {**os.environ, "SPARKDL_DEID_KEY": key}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"sparkdl ingest failed ({done.returncode}):\n" + redact(done.stderr[-3000:], key)
        )
    manifest = json.loads((out / "manifest.json").read_text())
    exported = len(list((out / "dicom").rglob("*.dcm"))) if (out / "dicom").is_dir() else 0
    shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": wall, "manifest": manifest, "exported": exported}


def table_a(rows: list[tuple[Cohort, dict[str, Any]]]) -> None:
    print(f"\n### (a) `sparkdl ingest --export-dicom --master {MASTER}` (CLI, whole process)\n")
    print(
        "| cohort | files | cataloged | rejected | .dcm exported | wall s | files/s | "
        "ingest total_s | files/s (total_s) | start-up + exit s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for cohort, r in rows:
        counts, total = r["manifest"]["counts"], r["manifest"]["timings"]["total_s"]
        print(
            f"| {cohort.name} | {cohort.files:,} | {counts['cataloged']:,} | "
            f"{counts['rejected']:,} | {r['exported']:,} | {r['wall_s']:.1f} | "
            f"{cohort.files / r['wall_s']:.1f} | {total:.1f} | {cohort.files / total:.1f} | "
            f"{r['wall_s'] - total:.1f} |"
        )


# -- part b: the one-process loop --------------------------------------------------------------


def loop_child(src: Path, dst: Path, same_outputs: bool = False) -> None:
    """Part b's child process: the loop a data engineer would write (imports timed too).

    ``same_outputs``: also what sparkdl's volumes are, done the plain way: each image's HU
    (``apply_modality_lut``, rounded to int16) kept by series and size, each series sorted
    along its normal and saved as one ``.npy`` under ``DST/volumes/`` (held in memory until
    the end: about 0.5 MB a 512² slice).
    """
    start = time.perf_counter()
    import numpy as np
    import pydicom
    from dicognito.anonymizer import Anonymizer
    from pydicom.pixels import apply_modality_lut

    imported = time.perf_counter()
    cpu0 = time.process_time()
    anonymizer = Anonymizer()
    written = failed = 0
    series: dict[tuple[str, int, int], list[tuple[float, Any]]] = {}
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path)
            anonymizer.anonymize(ds)
            out = dst / path.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(out)
            written += 1
            if same_outputs and "PixelData" in ds and "ImageOrientationPatient" in ds:
                iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
                position = float(np.dot(np.cross(iop[:3], iop[3:]), ds.ImagePositionPatient))
                hu = np.rint(apply_modality_lut(ds.pixel_array, ds))
                shaped = (str(ds.SeriesInstanceUID), int(ds.Rows), int(ds.Columns))
                slices = series.setdefault(shaped, [])
                slices.append((position, np.clip(hu, -32768, 32767).astype(np.int16)))
        except Exception:  # noqa: BLE001 - not DICOM, or dicognito could not handle it
            failed += 1
    if same_outputs:
        volumes = dst / "volumes"
        volumes.mkdir(parents=True, exist_ok=True)
        for number, (_, slices) in enumerate(sorted(series.items())):
            slices.sort(key=lambda item: item[0])
            np.save(volumes / f"{number:06d}.npy", np.stack([hu for _, hu in slices]))
    print(
        "RESULT "
        + json.dumps(
            {
                "import_s": imported - start,
                "loop_s": time.perf_counter() - imported,
                "cpu_s": time.process_time() - cpu0,
                "written": written,
                "failed": failed,
                "volumes": len(series),
            }
        )
    )


def part_b(cohort: Cohort, out: Path, same_outputs: bool = False) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    # pydicom's warnings (invalid VR values, which quote them) go to the child's stderr,
    # which is kept only to show on failure.
    mode = "--same-outputs-child" if same_outputs else "--loop-child"
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), mode, str(cohort.path), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"loop failed ({done.returncode}):\n{done.stderr[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return {
        **json.loads(lines[-1][len("RESULT ") :]),
        "wall_s": wall,
        "warnings": done.stderr.count("UserWarning"),
    }


def table_b(
    rows: list[tuple[Cohort, dict[str, Any], dict[str, Any]]], a: dict[str, dict[str, Any]]
) -> None:
    print(
        "\n### (b) one-process loops: pydicom.dcmread → dicognito anonymize → save_as (plain); "
        "the same plus each series' int16 HU volume sorted and saved with NumPy (same outputs)\n"
    )
    print(
        "| cohort | files | written | failed | plain wall s | plain files/s | same-outputs "
        "wall s | volumes | same-outputs files/s | CPU s plain / same | sparkdl (a) ÷ plain | "
        "sparkdl (a) ÷ same-outputs |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for cohort, plain, same in rows:
        rate, same_rate = cohort.files / plain["wall_s"], cohort.files / same["wall_s"]
        ratios = ["n/a (part a not run)"] * 2
        if cohort.name in a:
            sparkdl_rate = cohort.files / a[cohort.name]["wall_s"]
            ratios = [f"{sparkdl_rate / rate:.2f}×", f"{sparkdl_rate / same_rate:.2f}×"]
        print(
            f"| {cohort.name} | {cohort.files:,} | {plain['written']:,} | {plain['failed']:,} | "
            f"{plain['wall_s']:.1f} | {rate:.1f} | {same['wall_s']:.1f} | {same['volumes']} | "
            f"{same_rate:.1f} | {plain['cpu_s']:.1f} / {same['cpu_s']:.1f} | {ratios[0]} | "
            f"{ratios[1]} |"
        )


# -- part c: CPU per step of the executor path -------------------------------------------------


def sample_files(cohort: Cohort, n: int) -> list[Path]:
    """``n`` files spread evenly over the cohort's sorted files."""
    files = regular_files(cohort.path)
    if n < len(files):
        files = [files[i * len(files) // n] for i in range(n)]
    return files


def executor_body(files: list[Path], key: bytes, config: Any) -> tuple[Cost, Cost]:
    """CPU and wall of ``records._stage_partition``, the parse task's body, over ``files``, no
    Spark: open and read each file, sha256, ``process_instance``, the exported file written,
    the records written as a Parquet part (into a scratch folder)."""
    import pyarrow as pa

    from sparkdl.ingestion.read_stage import _stage_partition
    from sparkdl.units.records import Selection, Task

    rows = [{"path": str(f), "size": f.stat().st_size, "is_symlink": False} for f in files]
    batch = pa.RecordBatch.from_pylist(rows)
    with tempfile.TemporaryDirectory() as scratch:
        task = Task(key, config.deid, config.limits, export_to=f"{scratch}/exported")
        wall0, cpu0 = time.perf_counter(), time.process_time()
        out = _stage_partition([batch], task, Selection(), f"{scratch}/records")
        records = sum(result.column("rows")[0].as_py() for result in out)
        cpu = Cost(time.process_time() - cpu0, records)
        wall = Cost(time.perf_counter() - wall0, records)
    return cpu, wall


def part_c(cohort: Cohort, key: bytes, n: int) -> StepResult:  # noqa: PLR0915 - one timed step after another, in the executor's order
    import numpy as np
    import pydicom
    from pydicom.dataset import Dataset

    from sparkdl.deid import deidentify
    from sparkdl.ingestion.config import IngestConfig
    from sparkdl.units import parse
    from sparkdl.units.encoding import to_part10
    from sparkdl.units.header_json import header_json

    anonymizer: Any = None  # dicognito's, when installed
    try:
        from dicognito.anonymizer import Anonymizer

        anonymizer = Anonymizer()
    except ImportError:
        pass
    config = IngestConfig.load(None)  # what the CLI uses without --config
    deid, limits = config.deid, config.limits
    files = sample_files(cohort, n)
    blobs = [path.read_bytes() for path in files]
    costs = {name: Cost() for name, _ in STEPS}
    whole, sha, fresh, general = Cost(), Cost(), Cost(), Cost()
    dicog = Cost() if anonymizer is not None else None
    accepted_whole = failed = 0

    def fresh_read(data: bytes) -> Dataset:
        ds = parse._read(data)  # as the pipeline reads (raw datasets too); not timed here
        assert isinstance(ds, Dataset)
        return ds

    def whole_call(data: bytes) -> bool:
        outcome = parse.process_instance(data, key, deid, limits, True)
        return isinstance(outcome, parse.Accepted)

    def check(ds: Dataset) -> tuple[parse.Rejected | None, bool]:
        return parse._check(ds, deid, limits), parse._is_volume_candidate(ds)

    def decode(ds: Dataset) -> bool:
        pixels = parse._decode_pixels(ds)
        if isinstance(pixels, parse.Rejected):
            return False
        _ = (pixels.tobytes(), pixels.dtype.str)  # as _process does
        return True

    def decode_general(ds: Dataset) -> bool:
        try:
            pixels = ds.pixel_array
        except Exception:  # noqa: BLE001 - counted as not decoded, as _decode_pixels does
            return False
        _ = (np.ascontiguousarray(pixels).tobytes(), pixels.dtype.str)
        return True

    def anonymize(ds: Dataset) -> bool:
        assert anonymizer is not None
        try:
            anonymizer.anonymize(ds)
            return True
        except Exception:  # noqa: BLE001 - counted, not timed away
            return False

    with warnings.catch_warnings(), pydicom.config.disable_value_validation():
        warnings.simplefilter("ignore")  # pydicom warnings quote header values
        if blobs:  # warm-up: imports, rule table, decoder lookups
            whole_call(blobs[0])
            if anonymizer is not None:
                anonymize(fresh_read(blobs[len(blobs) // 2]))
        for start in range(0, len(blobs), CHUNK):
            chunk = blobs[start : start + CHUNK]
            accepted_whole += sum(timed(whole, whole_call, chunk))
            timed(sha, lambda data: hashlib.sha256(data).hexdigest(), chunk)

            read = timed(costs["read"], parse._read, chunk)
            datasets = [(i, ds) for i, ds in enumerate(read) if isinstance(ds, Dataset)]
            # parse._process keeps what the checks, decoding and catalog fields only read as
            # raw elements (parse._reading); done here untimed around the same steps.
            stored = [parse.elements_as_stored(ds) for _, ds in datasets]
            checked = timed(costs["checks"], check, [ds for _, ds in datasets])
            passed = [
                (i, ds, candidate)
                for (i, ds), (problem, candidate) in zip(datasets, checked)
                if problem is None
            ]
            candidates = [(i, ds) for i, ds, candidate in passed if candidate]
            decoded = timed(costs["decode"], decode, [ds for _, ds in candidates])
            timed(general, decode_general, [ds for _, ds in candidates])
            bad = {i for (i, _), ok in zip(candidates, decoded) if not ok}
            ok = [(i, ds) for i, ds, _ in passed if i not in bad]
            for (_, ds), elements in zip(datasets, stored):
                parse.restore_elements(ds, elements)
            results = timed(
                costs["deid"], lambda ds: deidentify(ds, key, deid), [ds for _, ds in ok]
            )
            timed(costs["export"], to_part10, [ds for _, ds in ok])
            stored = [parse.elements_as_stored(ds) for _, ds in ok]
            timed(
                costs["catalog"],
                lambda pair: parse.catalog_fields(pair[0], pair[1].date_offset_days),
                [(ds, result) for (_, ds), result in zip(ok, results)],
            )
            for (_, ds), elements in zip(ok, stored):
                parse.restore_elements(ds, elements)
            timed(costs["header"], header_json, [ds for _, ds in ok])

            # De-identification alone, both tools on freshly read datasets of these instances.
            timed(
                fresh, lambda ds: deidentify(ds, key, deid), [fresh_read(chunk[i]) for i, _ in ok]
            )
            if dicog is not None:
                done = timed(dicog, anonymize, [fresh_read(chunk[i]) for i, _ in ok])
                failed += done.count(False)
    body_cpu, body_wall = executor_body(files, key, config)
    return StepResult(
        len(blobs),
        costs,
        whole,
        accepted_whole,
        sha,
        fresh,
        dicog,
        body_cpu,
        body_wall,
        failed,
        general,
    )


def table_c(rows: list[tuple[Cohort, StepResult]]) -> None:
    print(
        "\n### (c) CPU per instance of sparkdl's executor path (`parse._process`), "
        "in memory, one process\n"
    )
    print(
        "ms of CPU per instance the step ran on (instances; share of the whole "
        "`process_instance` CPU). Steps run in the pipeline's order on the same datasets.\n"
    )
    print("| step | " + " | ".join(c.name for c, _ in rows) + " |")
    print("| --- |" + " ---: |" * len(rows))
    print("| instances sampled (files) | " + " | ".join(f"{r.sampled:,}" for _, r in rows) + " |")

    def cell(cost: Cost, r: StepResult) -> str:
        share = 100 * cost.cpu_s / r.whole.cpu_s if r.whole.cpu_s else float("nan")
        return f"{cost.ms():.2f} ({cost.n:,}; {share:.0f} %)"

    for name, label in STEPS:
        print(f"| {label} | " + " | ".join(cell(r.costs[name], r) for _, r in rows) + " |")
    summed = [Cost(sum(c.cpu_s for c in r.costs.values()), r.sampled) for _, r in rows]
    print(
        "| sum of the steps, per sampled instance | "
        + " | ".join(cell(s, r) for s, (_, r) in zip(summed, rows))
        + " |"
    )
    print(
        "| **whole `parse.process_instance`** (export on) | "
        + " | ".join(
            f"**{r.whole.ms():.2f}** ({r.whole.n:,}; {r.accepted_whole:,} accepted)"
            for _, r in rows
        )
        + " |"
    )
    print(
        "| pixel decode the general way: `Dataset.pixel_array` + tobytes, same slices "
        "(before `units.native_pixels`; not in the sum) | "
        + " | ".join(f"{r.decode_general.ms():.2f} ({r.decode_general.n:,})" for _, r in rows)
        + " |"
    )
    print(
        "| outside it: content sha256 (`records.file_records`) | "
        + " | ".join(cell(r.sha256, r) for _, r in rows)
        + " |"
    )
    print(
        "| parse task body without Spark: `records._stage_partition` on the files (read, "
        "sha256, process_instance, export file and Parquet part written), CPU / wall | "
        + " | ".join(f"{r.body_cpu.ms():.2f} / {r.body_wall.ms():.2f}" for _, r in rows)
        + " |"
    )
    print(
        "| de-id on fresh datasets: sparkdl `deidentify` | "
        + " | ".join(f"{r.deid_fresh.ms():.2f} ({r.deid_fresh.n:,})" for _, r in rows)
        + " |"
    )
    print(
        "| de-id on fresh datasets: dicognito `anonymize` | "
        + " | ".join(
            f"{r.dicognito.ms():.2f} ({r.dicognito.n:,}; {r.dicognito_failed} failed)"
            if r.dicognito
            else "not installed"
            for _, r in rows
        )
        + " |"
    )
    print(
        "| **sparkdl de-id ÷ dicognito** (per instance) | "
        + " | ".join(
            f"**{r.deid_fresh.ms() / r.dicognito.ms():.2f}×**"
            if r.dicognito and r.dicognito.n
            else "n/a"
            for _, r in rows
        )
        + " |"
    )


# -- part d: stage seconds and Spark jobs ------------------------------------------------------


#: Operator scopes of a stage's RDDs that say what a job did (the rest is plumbing).
_NOT_SHOWN = ("WholeStageCodegen", "map", "mapPartitions", "AQEShuffleRead")


def read_event_log(folder: Path) -> tuple[dict[int, dict[str, Any]], str]:
    """Jobs from Spark event log files, and the log's text.

    Per job: submission and completion time, tasks, call site (PySpark's for RDD actions, the
    SQL execution's description for DataFrame writes), the operators of its stages, and the
    shuffle bytes its completed stages wrote.
    """
    jobs: dict[int, dict[str, Any]] = {}
    sql: dict[str, str] = {}
    stage_job: dict[int, int] = {}
    texts = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        text = path.read_text(errors="replace")
        texts.append(text)
        for line in text.splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line
            kind = str(event.get("Event"))
            if kind.endswith("SQLExecutionStart"):
                sql[str(event.get("executionId"))] = str(event.get("description", "?"))
            elif kind == "SparkListenerJobStart":
                job = jobs.setdefault(event["Job ID"], {"shuffle_bytes": 0})
                properties = event.get("Properties") or {}
                execution = properties.get("spark.sql.execution.id")
                site = properties.get("callSite.short") or (
                    f"{sql.get(str(execution), '?')} (SQL {execution})" if execution else "?"
                )
                operators: list[str] = []
                for stage in event.get("Stage Infos", []):
                    stage_job[stage["Stage ID"]] = event["Job ID"]
                    for rdd in stage.get("RDD Info", []):
                        name = json.loads(rdd["Scope"])["name"].strip() if rdd.get("Scope") else ""
                        if name and not name.startswith(_NOT_SHOWN) and name not in operators:
                            operators.append(name)
                job.update(
                    submitted=event["Submission Time"] / 1000,
                    call_site=site,
                    operators=operators,
                    tasks=sum(s.get("Number of Tasks", 0) for s in event.get("Stage Infos", [])),
                )
            elif kind == "SparkListenerStageCompleted":
                info = event["Stage Info"]
                written = sum(
                    int(a.get("Value", 0))
                    for a in info.get("Accumulables", [])
                    if a.get("Name") == "internal.metrics.shuffle.write.bytesWritten"
                )
                if info["Stage ID"] in stage_job:
                    jobs[stage_job[info["Stage ID"]]]["shuffle_bytes"] += written
            elif kind == "SparkListenerJobEnd":
                jobs.setdefault(event["Job ID"], {"shuffle_bytes": 0})["completed"] = (
                    event["Completion Time"] / 1000
                )
    return jobs, "\n".join(texts)


def stage_of(submitted: float, t_call: float, timings: dict[str, float]) -> str:
    """The ingest stage whose window (stage durations laid end to end from the call) holds it."""
    edge = t_call
    for stage in STAGES:
        edge += timings.get(stage, 0.0)
        if submitted < edge:
            return stage
    return "commit"


def ingest_exporting(inputs: list[str], out: Path, spark: Any) -> dict[str, Any]:
    """``sparkdl.ingest`` with the CLI's default config and DICOM export on."""
    import dataclasses

    from sparkdl import IngestConfig, ingest

    config = dataclasses.replace(IngestConfig.load(None), export_dicom=True)
    manifest: dict[str, Any] = ingest(inputs, str(out), config=config, spark=spark)
    return manifest


@contextlib.contextmanager
def key_in_environment(key: str) -> Iterator[None]:
    """``SPARKDL_DEID_KEY`` set to ``key`` inside the block, as it was after it. Set only once
    the session runs: the JVM (and the Python workers it starts) never see it in their
    environment; sparkdl ships it to the tasks inside the closure."""
    previous = os.environ.get("SPARKDL_DEID_KEY")
    os.environ["SPARKDL_DEID_KEY"] = key
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SPARKDL_DEID_KEY", None)
        else:
            os.environ["SPARKDL_DEID_KEY"] = previous


@contextlib.contextmanager
def closing_spark(spark: Any) -> Iterator[None]:
    """The session stopped after the block, whatever happened in it."""
    try:
        yield
    finally:
        spark.stop()


def warm_up(cohort: Cohort, work: Path, spark: Any) -> None:
    """An ingest of 8 files of ``cohort``, not reported: it starts the Python workers and
    their imports, so that the first cohort measured does not carry them alone (part a
    carries them, in every run)."""
    warm = work / "warmup"
    shutil.rmtree(warm, ignore_errors=True)
    warm.mkdir()
    for i, path in enumerate(regular_files(cohort.path)[:8]):
        shutil.copyfile(path, warm / f"{i}_{path.name}")
    ingest_exporting([str(warm)], work / "out_warmup", spark)
    shutil.rmtree(warm, ignore_errors=True)
    shutil.rmtree(work / "out_warmup", ignore_errors=True)


def tree_cpu_seconds() -> float:
    """User + system CPU seconds of this process and all its descendants (with the children
    they reaped), from ``/proc``: the driver, the JVM and the Python workers."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(v) for v in fields[11:15]) / ticks
    tree, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(times.get(pid, 0.0) for pid in tree)


def part_e(cohorts: list[Cohort], work: Path, key: str) -> list[tuple[Cohort, str, dict, float]]:
    """Each cohort ingested with the shuffle, then with local assembly, in one session."""

    from sparkdl import IngestConfig, ingest
    from sparkdl.spark import get_spark

    spark = get_spark(MASTER)
    rows = []
    with closing_spark(spark), key_in_environment(key):
        warm_up(cohorts[0], work, spark)
        for cohort in cohorts:
            for way, local in (("shuffle", False), ("local", True)):
                out = work / "out_e"
                shutil.rmtree(out, ignore_errors=True)
                config = IngestConfig(export_dicom=True, local_assembly=local)
                cpu = tree_cpu_seconds()
                manifest = ingest([str(cohort.path)], str(out), config=config, spark=spark)
                rows.append((cohort, way, manifest["timings"], tree_cpu_seconds() - cpu))
                shutil.rmtree(out, ignore_errors=True)
                print(f"(e) {cohort.name} {way}: {load_text()}", flush=True)
    return rows


def table_e(rows: list[tuple[Cohort, str, dict, float]]) -> None:
    print(
        "\n### (e) series assembly: Spark shuffle vs the tasks that read the staged slices "
        f"(`sparkdl.ingest` in-process, {MASTER}, export on, after a warm-up)\n"
    )
    print(
        "| cohort | files | assembly | parse+deid s | volumes s | patches s | write s | "
        "total s | CPU s (process tree) | volumes ÷ shuffle's |"
    )
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    shuffled: dict[str, float] = {}
    for cohort, way, timings, cpu in rows:
        volumes = timings.get("volumes_s", 0.0)
        if way == "shuffle":
            shuffled[cohort.name] = volumes
        ratio = volumes / shuffled[cohort.name] if shuffled.get(cohort.name) else float("nan")
        print(
            f"| {cohort.name} | {cohort.files:,} | {way} | {timings.get('parse_deid_s', 0):.1f} "
            f"| {volumes:.1f} | {timings.get('patches_s', 0):.1f} | "
            f"{timings.get('write_s', 0):.1f} | {timings.get('total_s', 0):.1f} | {cpu:.1f} | "
            f"{ratio:.2f} |"
        )


def part_d(cohorts: list[Cohort], work: Path, key: str) -> tuple[list[JobCount], str]:
    from sparkdl.spark import get_spark

    logs = work / "eventlog"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    spark = get_spark(
        MASTER,
        {
            "spark.eventLog.enabled": "true",
            "spark.eventLog.dir": logs.as_uri(),
            "spark.eventLog.compress": "false",
            "spark.eventLog.rolling.enabled": "false",
        },
    )
    logged = spark.sparkContext.getConf().get("spark.eventLog.enabled") == "true"
    tracker = spark.sparkContext.statusTracker()
    runs = []
    with closing_spark(spark), key_in_environment(key):
        warm_up(cohorts[0], work, spark)
        for cohort in cohorts:
            out = work / "out_d"
            shutil.rmtree(out, ignore_errors=True)
            before = set(tracker.getJobIdsForGroup(None))
            t_call = time.time()
            manifest = ingest_exporting([str(cohort.path)], out, spark)
            jobs = set(tracker.getJobIdsForGroup(None)) - before
            runs.append(JobCount(cohort, manifest, t_call, jobs))
            shutil.rmtree(out, ignore_errors=True)
            print(f"(d) {cohort.name}: {len(jobs)} Spark jobs, {load_text()}", flush=True)
    note = "event log off (a session existed before part d): no per-job breakdown"
    if logged:
        events, text = read_event_log(logs)
        for run in runs:
            run.events = {i: events[i] for i in run.job_ids if i in events}
        note = (
            "the key does not occur in the event log"
            if key not in text
            else "WARNING: the key occurs in the Spark event log"
        )
    shutil.rmtree(logs, ignore_errors=True)
    return runs, note


def table_d(runs: list[JobCount], note: str) -> None:
    print(
        f"\n### (d) stages (`manifest.json` timings, s) and Spark jobs of `sparkdl.ingest` "
        f"in-process, {MASTER}, export on, after a warm-up ingest of 8 files\n"
    )
    print(
        "| cohort | files | list | parse+deid | volumes | patches | write | commit + counts | "
        "total | Spark jobs | jobs list/parse/volumes/patches/write/commit | tasks | "
        "sum of job s | shuffle MB written |"
    )
    print("| --- |" + " ---: |" * 9 + " --- | ---: | ---: | ---: |")
    for run in runs:
        t = run.manifest["timings"]
        rest = t["total_s"] - sum(t.get(s, 0.0) for s in STAGES)
        by_stage = dict.fromkeys([*STAGES, "commit"], 0)
        for job in run.events.values():
            if "submitted" in job:
                by_stage[stage_of(job["submitted"], run.t_call, t)] += 1
        tasks = sum(job.get("tasks", 0) for job in run.events.values())
        job_s = sum(
            job["completed"] - job["submitted"]
            for job in run.events.values()
            if "completed" in job and "submitted" in job
        )
        split = "/".join(str(n) for n in by_stage.values()) if run.events else "n/a"
        shuffled = sum(job.get("shuffle_bytes", 0) for job in run.events.values()) / MB
        print(
            f"| {run.cohort.name} | {run.cohort.files:,} | "
            + " | ".join(f"{t.get(s, 0.0):.1f}" for s in STAGES)
            + f" | {rest:.1f} | {t['total_s']:.1f} | {len(run.job_ids)} | {split} | "
            f"{tasks:,} | {job_s:.1f} | {shuffled:.1f} |"
        )
    print(
        f"\nJobs counted with `statusTracker().getJobIdsForGroup(None)` before/after each "
        f"ingest; tasks, job seconds and call sites from the Spark event log ({note})."
    )
    for run in runs:
        if not run.events:
            continue
        print(
            f"\n{run.cohort.name}, jobs in submission order (stage · call site · tasks · s · "
            "shuffle MB written · operators):"
        )
        for job_id in sorted(run.events):
            job = run.events[job_id]
            seconds = job.get("completed", job.get("submitted", 0.0)) - job.get("submitted", 0.0)
            stage = stage_of(job.get("submitted", 0.0), run.t_call, run.manifest["timings"])
            print(
                f"- job {job_id}: {stage} · {job.get('call_site', '?')} · "
                f"{job.get('tasks', 0)} · {seconds:.2f} · "
                f"{job.get('shuffle_bytes', 0) / MB:.1f} · " + ", ".join(job.get("operators", []))
            )


# -- main ----------------------------------------------------------------------------------------


def build_cohorts(args: argparse.Namespace, work: Path) -> list[Cohort]:
    """The cohorts the arguments ask for, made in ``work`` (or found there)."""
    cohorts: list[Cohort] = []
    if args.patients_128 > 0:
        cohorts.append(synth_cohort(work, args.patients_128, args.seed, 128))
    if args.patients_512 > 0:
        cohorts.append(synth_cohort(work, args.patients_512, args.seed, 512))
    if args.copies_512 > 0:
        cohorts.append(copies_cohort(work, max(args.patients_512, 5), args.seed, args.copies_512))
    if args.lidc.lower() != "none":
        lidc = lidc_cohort(work, Path(args.lidc), args.lidc_files)
        if lidc is not None:
            cohorts.append(lidc)
    return cohorts


def run(args: argparse.Namespace, parts: list[str], work: Path) -> None:
    """Build the cohorts in ``work``, then run the chosen parts and print their tables."""
    import pydicom
    import pyspark

    print(
        f"machine: {os.cpu_count()} cores, {load_text()}; Python {sys.version.split()[0]}, "
        f"pyspark {pyspark.__version__}, pydicom {pydicom.__version__}, "
        f"dicognito {dicognito_version() or 'not installed'}; parts {','.join(parts)}",
        flush=True,
    )

    cohorts = build_cohorts(args, work)
    if not cohorts:
        raise SystemExit("no cohort to measure")
    print("\n| cohort | input | files | MB |\n| --- | --- | ---: | ---: |")
    for cohort in cohorts:
        print(f"| {cohort.name} | {cohort.path} | {cohort.files:,} | {cohort.bytes / MB:.0f} |")
    print(flush=True)

    key = secrets.token_hex(32)  # never printed, never written
    a: dict[str, dict[str, Any]] = {}
    if "a" in parts:
        rows_a = []
        for cohort in cohorts:
            rows_a.append((cohort, part_a(cohort, work / "out_a", key)))
            a[cohort.name] = rows_a[-1][1]
            print(f"(a) {cohort.name}: {a[cohort.name]['wall_s']:.1f} s, {load_text()}", flush=True)
        table_a(rows_a)
        print(f"\n{load_text()}\n", flush=True)
    if "b" in parts:
        rows_b = []
        for cohort in cohorts:
            plain = part_b(cohort, work / "out_b")
            same = part_b(cohort, work / "out_b", same_outputs=True)
            rows_b.append((cohort, plain, same))
            print(
                f"(b) {cohort.name}: {plain['wall_s']:.1f} s plain, {same['wall_s']:.1f} s same "
                f"outputs, {load_text()}",
                flush=True,
            )
        table_b(rows_b, a)
        print(f"\n{load_text()}\n", flush=True)
    if "c" in parts:
        rows_c = []
        for cohort in cohorts:
            start = time.perf_counter()
            rows_c.append((cohort, part_c(cohort, key.encode(), args.instances)))
            print(
                f"(c) {cohort.name}: {time.perf_counter() - start:.1f} s, {load_text()}", flush=True
            )
        table_c(rows_c)
        print(f"\n{load_text()}\n", flush=True)
    if "d" in parts:
        runs, note = part_d(cohorts, work, key)
        table_d(runs, note)
        print(f"\n{load_text()}\n", flush=True)
    if "e" in parts:
        table_e(part_e(cohorts, work, key))
        print(f"\n{load_text()}\n", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--patients-128",
        type=int,
        default=28,
        help="synth patients at 128² (28 at seed 0: 5,058 files; 0 skips)",
    )
    parser.add_argument(
        "--patients-512",
        type=int,
        default=5,
        help="synth patients at 512² (5 at seed 0: 1,035 files; 0 skips)",
    )
    parser.add_argument(
        "--copies-512",
        type=int,
        default=0,
        help="also a cohort of K copies of the 512² one, new UIDs each (10: 10,350 files)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lidc", default=str(LIDC), help="LIDC-IDRI folder, or 'none'")
    parser.add_argument(
        "--lidc-files",
        type=int,
        default=0,
        help="use a copy of the first N LIDC slices (0: the whole folder)",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=500,
        help="part c: files per cohort held in memory and timed",
    )
    parser.add_argument("--only", default=",".join(PARTS), help="parts to run, e.g. a,b or c")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 patient per synth cohort, 20 LIDC slices, 40 instances",
    )
    parser.add_argument("--work", default=None, help="scratch folder, kept (default: a temp dir)")
    parser.add_argument("--loop-child", nargs=2, metavar=("SRC", "DST"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--same-outputs-child", nargs=2, metavar=("SRC", "DST"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.loop_child or args.same_outputs_child:
        src, dst = args.loop_child or args.same_outputs_child
        loop_child(Path(src), Path(dst), same_outputs=bool(args.same_outputs_child))
        return
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    if not parts or set(parts) - set(PARTS):
        parser.error(f"--only takes a comma-separated subset of {','.join(PARTS)}: {args.only!r}")
    if args.quick:
        args.patients_128, args.patients_512 = min(args.patients_128, 1), min(args.patients_512, 1)
        args.lidc_files = args.lidc_files or 20
        args.instances = min(args.instances, 40)
    if "b" in parts and dicognito_version() is None:
        print(
            "note: dicognito is not installed (pip install -r scripts/bench-requirements.txt): "
            "part b is skipped",
            flush=True,
        )
        parts.remove("b")

    work = Path(args.work or tempfile.mkdtemp(prefix="bench_ingest_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(args, parts, work)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
