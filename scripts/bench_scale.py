"""Ingest at scale: throughput and peak memory for 1k-50k instances, loose and archived,
the cost of an incremental (append) run that adds 1% new files, and series-assembly memory.

    python scripts/bench_scale.py --sizes 1000 10000 50000 [--work DIR] [--assembly-slices 1000]
        [--masters local[2] local-cluster[2,1,3072]]

Instances are cheap on purpose (64x64 CT slices, so per-file overhead dominates): one real CT
slice from ``synthesize_cohort`` is saved once with fixed-width placeholder values, and every
instance is that byte string with its SOPInstanceUID (file meta and dataset),
SeriesInstanceUID, ImagePositionPatient and InstanceNumber patched in place: series of 100
slices at 2.5 mm. Archived = one uncompressed tar per series.

Each ingest runs in a fresh child process on each of ``--masters`` (default ``local[2]``; its
own JVM, so a run's peak memory is its own); the parent samples the RSS of the child's whole
process tree (driver Python, driver JVM, Python workers) every 0.2 s. Time is the ingest's own
``total_s`` (no JVM start).
Prints markdown tables; the load average is printed with them because the machine is shared.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
MB = 1024**2
SLICES_PER_SERIES = 100

_SOP = "1.2.826.0.1.3680043.10.1.{:012d}"
_SERIES = "1.2.826.0.1.3680043.10.2.{:012d}"
_Z = "{:9.3f}"  # DS, 9 characters (leading spaces are allowed)
_NUMBER = "{:5d}"  # IS, 5 characters


def make_template(work: Path) -> bytes:
    """One synthetic CT slice saved with placeholders that occur exactly where they belong."""
    import pydicom

    from sparkdl.synth import synthesize_cohort

    cohort = synthesize_cohort(work / "template_cohort", num_patients=1, seed=5, image_size=64)
    for path in sorted(Path(cohort.dicom_dir).rglob("*")):
        if not path.is_file():
            continue
        ds = pydicom.dcmread(path)
        if (
            ds.get("Modality") == "CT"
            and "ImagePositionPatient" in ds
            and "LOCALIZER" not in list(ds.get("ImageType", []))
        ):
            break
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = _SOP.format(999_999_999_999)
    ds.SeriesInstanceUID = _SERIES.format(999_999_999_999)
    ds.ImagePositionPatient = ["-100.0", "-100.0", "-7777.777"]
    ds.InstanceNumber = "77777"
    for keyword in ("SliceLocation", "ReferencedImageSequence", "SourceImageSequence"):
        if keyword in ds:
            delattr(ds, keyword)
    path = work / "template.dcm"
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    for placeholder, count in (
        (_SOP.format(999_999_999_999).encode(), 2),
        (_SERIES.format(999_999_999_999).encode(), 1),
        (b"-7777.777", 1),
        (b"77777", 1),
    ):
        assert data.count(placeholder) == count, (placeholder, data.count(placeholder))
    return data


def instance(template: bytes, series: int, index: int) -> bytes:
    uid = series * SLICES_PER_SERIES + index
    return (
        template.replace(_SOP.format(999_999_999_999).encode(), _SOP.format(uid).encode())
        .replace(_SERIES.format(999_999_999_999).encode(), _SERIES.format(series).encode())
        .replace(b"-7777.777", _Z.format(-150.0 + 2.5 * index).encode())
        .replace(b"77777", _NUMBER.format(index + 1).encode())
    )


def write_instances(
    template: bytes, root: Path, first_series: int, num_series: int, archived: bool
) -> int:
    """Series ``first_series ..`` as loose files (a folder per series) or a tar per series."""
    root.mkdir(parents=True, exist_ok=True)
    total = 0
    for series in range(first_series, first_series + num_series):
        files = [(f"i{k:03d}.dcm", instance(template, series, k)) for k in range(SLICES_PER_SERIES)]
        if archived:
            with tarfile.open(root / f"s{series:06d}.tar", "w") as archive:
                for name, data in files:
                    info = tarfile.TarInfo(f"s{series:06d}/{name}")
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
            total += (root / f"s{series:06d}.tar").stat().st_size
        else:
            folder = root / f"s{series:06d}"
            folder.mkdir()
            for name, data in files:
                (folder / name).write_bytes(data)
                total += len(data)
    return total


_CHILD = textwrap.dedent("""
    import json, sys, time
    from sparkdl.ingestion.job import ingest
    from sparkdl.spark import get_spark

    inputs, out, mode, master = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    spark = get_spark(master, {"spark.sql.shuffle.partitions": "8",
                               "spark.driver.memory": "2g"})
    manifest = ingest(inputs, out, spark=spark, mode=mode)
    spark.stop()
    print("RESULT " + json.dumps({"counts": manifest["counts"], "timings": manifest["timings"],
                                  "last_run": manifest["last_run"]}))
""")


def _sample_tree(proc: psutil.Process, peaks: dict[str, int], stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            tree = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            return
        total = biggest_python = jvm = 0
        for p in tree:
            try:
                rss = p.memory_info().rss
                name = p.name()
            except psutil.Error:
                continue
            total += rss
            if "java" in name:
                jvm += rss
            elif p.pid != proc.pid:
                biggest_python = max(biggest_python, rss)
        peaks["tree"] = max(peaks.get("tree", 0), total)
        peaks["jvm"] = max(peaks.get("jvm", 0), jvm)
        peaks["worker"] = max(peaks.get("worker", 0), biggest_python)
        stop.wait(0.2)


def run_ingest(
    inputs: list[Path], out: Path, mode: str = "overwrite", master: str = "local[2]"
) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SPARKDL_DEID_KEY": os.environ.get(
            "SPARKDL_DEID_KEY", "bench-key-0123456789abcdef0123456789"
        ),
    }
    started = time.time()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _CHILD,
            json.dumps([str(p) for p in inputs]),
            str(out),
            mode,
            master,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peaks: dict[str, int] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_tree, args=(psutil.Process(proc.pid), peaks, stop))
    sampler.start()
    stdout, stderr = proc.communicate()
    stop.set()
    sampler.join()
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"ingest failed ({proc.returncode}): {stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT ") :])
    result.update(peaks=peaks, wall_s=time.time() - started)
    return result


def bench_sizes(
    sizes: list[int],
    work: Path,
    template: bytes,
    kinds: tuple[str, ...] = ("loose", "tar"),
    masters: tuple[str, ...] = ("local[2]",),
) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        num_series = max(1, size // SLICES_PER_SERIES)
        for kind, master in ((k, m) for k in kinds for m in masters):
            archived = kind == "tar"
            inputs = work / f"in_{size}_{kind}"
            t0 = time.time()
            num_bytes = write_instances(template, inputs / "day1", 0, num_series, archived)
            generated = time.time() - t0
            out = work / f"out_{size}_{kind}"
            full = run_ingest([inputs], out, master=master)
            row = {
                "size": size,
                "kind": kind,
                "master": master,
                "bytes": num_bytes,
                "generate_s": generated,
                "full": full,
            }
            if not archived:  # incremental: 1% new instances (new series) in a new folder
                write_instances(
                    template, inputs / "day2", num_series, max(1, num_series // 100), archived
                )
                row["append"] = run_ingest([inputs], out, mode="append", master=master)
            rows.append(row)
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(inputs, ignore_errors=True)
            print(_row_line(row), flush=True)
    return rows


def _row_line(row: dict[str, Any]) -> str:
    full = row["full"]
    seconds = full["timings"]["total_s"]
    t = full["timings"]
    line = (
        f"| {row['size']:,} | {row['kind']} | {row['master']} | {full['counts']['units']:,} | "
        f"{seconds:.1f} | "
        f"{full['counts']['units'] / seconds:.0f} | {row['bytes'] / MB / seconds:.2f} | "
        f"{t['list_s']:.1f} / {t['parse_deid_s']:.1f} / {t['volumes_s']:.1f} / "
        f"{t['write_s']:.1f} | "
        f"{full['peaks']['tree'] / MB:.0f} | {full['peaks']['jvm'] / MB:.0f} | "
        f"{full['peaks']['worker'] / MB:.0f} |"
    )
    if "append" in row:
        append = row["append"]
        ratio = append["timings"]["total_s"] / seconds
        a = append["timings"]
        line += (
            f" {append['last_run']['new_units']:,} new: {a['total_s']:.1f} s = "
            f"{100 * ratio:.0f}% ({a['list_s']:.1f} / {a['parse_deid_s']:.1f} / "
            f"{a['volumes_s']:.1f} / {a['write_s']:.1f}) |"
        )
    else:
        line += " |"
    return line


_ASSEMBLY = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np
    from sparkdl.assembly.series import assemble_series

    num_slices, size = int(sys.argv[1]), int(sys.argv[2])
    def rss():  # VmHWM: peak of this process image (ru_maxrss survives exec)
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    base = rss()
    rng = np.random.default_rng(0)
    block = rng.integers(-1024, 2000, (size, size), dtype=np.int16)
    records = [{
        "sop_uid": f"1.2.3.{k}", "series_uid": "1.2.3", "study_uid": "1.2", "patient_id": "p",
        "frame_of_reference_uid": "1.2.9", "ImagePositionPatient": [-200.0, -200.0, 0.7 * k],
        "ImageOrientationPatient": [1.0, 0, 0, 0, 1.0, 0], "PixelSpacing": [0.7, 0.7],
        "Rows": size, "Columns": size, "RescaleSlope": 1.0, "RescaleIntercept": -1024.0,
        "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"], "SliceThickness": 0.7,
        "AcquisitionNumber": 1, "InstanceNumber": k + 1, "GantryDetectorTilt": 0.0,
        "NumberOfFrames": None, "pixels": np.roll(block, k, axis=0),
    } for k in range(num_slices)]
    loaded = rss()
    t0 = time.time()
    result = assemble_series(records)
    seconds = time.time() - t0
    (volume,) = result.volumes
    print("RESULT " + json.dumps({"base": base, "loaded": loaded, "peak": rss(), "seconds": seconds,
                                  "shape": list(volume.volume.shape),
                                  "input_bytes": num_slices * size * size * 2}))
""")


def bench_assembly(num_slices: int, size: int = 512) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _ASSEMBLY, str(num_slices), str(size)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(lines[-1][len("RESULT ") :])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000, 50000])
    parser.add_argument("--kinds", nargs="*", default=["loose", "tar"], choices=["loose", "tar"])
    parser.add_argument("--assembly-slices", type=int, nargs="*", default=[250, 1000])
    parser.add_argument(
        "--masters",
        nargs="*",
        default=["local[2]"],
        help="Spark masters to compare, e.g. local[2] local-cluster[2,1,3072]",
    )
    parser.add_argument("--work", default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()}, "
        f"free disk {shutil.disk_usage(work).free / 1024**3:.0f} GB",
        flush=True,
    )

    if any(master.startswith("local-cluster") for master in args.masters):
        sys.path.insert(0, str(ROOT))
        from tests.spark_home import linked_spark_home  # executors start from SPARK_HOME/jars

        os.environ["SPARK_HOME"] = str(linked_spark_home(Path(tempfile.mkdtemp(dir=work))))
    if args.sizes:
        template = make_template(work)
        print(
            f"\ninstance: {len(template):,} bytes (64x64 int16 CT), {SLICES_PER_SERIES} per "
            "series; time = ingest total_s (listing, parse+deid, volumes, writes)\n"
        )
        print(
            "| instances | input | master | units | total s | files/s | MB/s | list / parse / "
            "volumes / write s | peak RSS tree MB | JVM MB | largest worker MB | append +1% |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
        bench_sizes(args.sizes, work, template, tuple(args.kinds), tuple(args.masters))
        print(f"\nload average after: {os.getloadavg()}", flush=True)

    if args.assembly_slices:
        print(
            "\n| slices (512x512 int16) | input MB | assemble s | RSS after records MB | "
            "peak RSS MB | peak - records MB |"
        )
        print("|---|---|---|---|---|---|")
        for num_slices in args.assembly_slices:
            r = bench_assembly(num_slices)
            print(
                f"| {num_slices} | {r['input_bytes'] / MB:.0f} | {r['seconds']:.1f} | "
                f"{r['loaded'] / MB:.0f} | {r['peak'] / MB:.0f} | "
                f"{(r['peak'] - r['loaded']) / MB:.0f} |",
                flush=True,
            )
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
