"""LUNA16-sized candidates: patches per second from one CT volume, and the whole ingest.

One run, three parts, one markdown table each (the machine's cores and load average with them):

* ``1``: 850 candidates cut as 32³ patches at 1.0 mm from one 300 × 512² int16 volume
  (spacing ``(z, y, x)`` = (1.25, 0.7, 0.7) mm, feet-first and turned 5° about z; a smooth
  noisy chest phantom: air, body, two lungs, spine). The candidates are uniform over the
  volume's voxels, 2% of them within 3 voxels of a face (patches padded with air). Two ways,
  ``--repeat`` times each, interleaved, the median reported:

  - per point (``map_coordinates``): how sparkdl cut patches until now, reproduced here: per
    candidate, the block of the volume under the patch as float32, then
    ``scipy.ndimage.map_coordinates(order=1, mode="constant", cval=pad)`` on the meshgrid of
    the patch's axes, then ``geometry.hu_to_int16``;
  - one pass (``sparkdl.patches.grid.cut_patches``): all candidates in one call.

  CPU seconds (``time.process_time``: the machine is shared, so wall time moves with the
  load), wall seconds, patches/s and per point ÷ one pass; the two must agree within 1 HU on
  every voxel of every patch (checked, and the largest difference printed).
* ``2``: ``python -m sparkdl ingest DIR/mhd --annotations --candidates --master local[2]
  --quiet`` as a child process (JVM start and imports count) on ``sparkdl synth --format mhd
  --image-size 512 --candidates-per-series 850 --seed 0``, about ``--series`` axial series
  (a patient has 1 or 2; the count is reported, with the voxels: slice counts follow the
  synthetic variants). Wall seconds, CPU seconds of the child's process tree (driver, JVM,
  Python workers; sampled every 0.5 s, so a slight undercount), series, volumes, patches
  written, patches/s, and the manifest's ``timings`` per stage. The key comes from
  ``SPARKDL_DEID_KEY``, made with ``secrets.token_hex(32)`` per run and never printed.
* ``3``: candidate generation's cost in the whole ingest: part 2's ingest twice, the same
  cohort and key, a fresh output each: with ``--config`` ``candidates: {generate: never}``
  (the listed candidates only, as part 2), then ``{generate: always}`` (the generator's up to
  ``max_candidates`` per volume besides, cut as patches and written to ``OUT/candidates/``).
  Per way: wall and CPU seconds, series/s and files/s (an ``.mhd`` and its ``.raw`` are two),
  candidates generated and patches written (the manifest's ``last_run``), and the manifest's
  ``timings`` per stage (generation runs in the patch tasks: ``patches_s``); and always - never.

    .venv/bin/python scripts/bench_candidates.py [--repeat 3] [--series 20] [--work DIR]
        [--only 1,2,3] [--conf KEY=VALUE ...]    # --conf: Spark conf for the ingests
    .venv/bin/python scripts/bench_candidates.py --repeat 1 --series 2    # smoke run

With ``--work DIR`` the synthetic cohort is kept there and reused by the next run (the ingest
output is removed).

Measured on 2 shared cores while another engineer's test suite ran (load average 4.4 at the
start, 5.8 at the end), ``--work /tmp/bench_candidates --conf spark.driver.memory=8g``:

* (1), median of 3: per point 1.75 CPU s / 1.93 wall s (487 patches/s on CPU, 2.05 ms each);
  one pass 0.41 / 0.44 s (2,065 patches/s, 0.48 ms): 4.24× less CPU, 4.39× less wall. The
  two agree within 1 HU (267 of 27.9M voxels differ by 1: float32 rounding at .5); 240 of
  the 850 patches reach outside the volume and are padded.
* (2), 20 series / 20 volumes from 15 patients, 773M voxels (1.44 GB of .raw), 17,237
  patches written: 285 s wall (60 patches/s), 258 CPU s over the process tree, ingest
  ``total_s`` 273 s: list 0.1, parse+deid 78.7 (29%), volumes 102.7 (38%), patches 89.0
  (33%), write 2.7 s. Cutting is not what the patches stage spends: 17,237 patches are
  ~8.5 CPU s of one-pass cutting (part 1's rate) of its 89 s.
* That run needed ``--conf spark.driver.memory=8g``: with sparkdl's default 4 GB driver the
  ingest ran out of Java heap, first under the Parquet writes (parquet-mr copies each new
  min/max of a column: whole volumes) and then in the patches stage (every volume pickled on
  the JVM heap by the RDD path). Since dcd96fd (no statistics on image columns, patches
  through ``mapInArrow`` two volumes per batch, an ``.mhd``'s size counting its ``.raw`` when
  partitions are packed), ``--work /tmp/bench_candidates --only 2`` with the default 4 GB
  driver, load average 1.0 at the start and 3.0 at the end: 20 series / 20 volumes, 17,237
  patches, 111 s wall (155 patches/s), 204 CPU s over the process tree, ``total_s`` 104 s:
  parse+deid 30.8 (30%), volumes 39.2 (38%), patches 31.1 (30%), write 3.0 s.
* (3), ``--work DIR --only 3``, the default 4 GB driver, load average 2.8-4.7 (another
  engineer's jobs): never 208.9 s wall / 210.4 CPU s, always 211.3 / 223.3 (0.096 and 0.095
  series/s); 4,000 candidates generated (the cap, 200 per volume), 17,237 → 21,162 patches;
  ``patches_s`` 82.7 → 94.3 s (+11.6 s, ~0.6 s a volume, near ``bench_candidates_gen.py``'s
  0.81 CPU s per LUNA16-sized scan), the other stages within the load's noise (``volumes_s``
  66.7 → 54.1 s). Generation costs ~6 % more CPU and no measurable wall time here.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from bench_cohorts import cached_synth

from sparkdl.geometry import Geometry

ROOT = Path(__file__).resolve().parents[1]
MASTER = "local[2]"
PARTS = ("1", "2", "3")
GB = 1024**3

CANDIDATES = 850  # per series, as in LUNA16's candidates.csv (~551k over 888 scans, ~620)
SHAPE = (300, 512, 512)  # (z, y, x)
SPACING = (1.25, 0.7, 0.7)  # (z, y, x) mm
PATCH_SIZE = 32
PATCH_SPACING_MM = 1.0
PAD_HU = -1000
EDGE_FRACTION = 0.02
SEED = 0
#: Manifest timings in the order ``ingestion.ingest`` runs the stages.
STAGES = ("list_s", "parse_deid_s", "volumes_s", "lidc_s", "patches_s", "write_s")

Patches = npt.NDArray[np.int16]


@dataclass
class Timing:
    cpu_s: list[float]
    wall_s: list[float]

    def cpu(self) -> float:
        return statistics.median(self.cpu_s)

    def wall(self) -> float:
        return statistics.median(self.wall_s)


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f}"


# -- part 1: one volume, 850 candidates --------------------------------------------------------


def chest_volume(rng: np.random.Generator) -> Patches:
    """A CT-like int16 volume: air, an elliptic body, two lungs, a spine, smooth and white noise."""
    depth, rows, cols = SHAPE
    volume = np.empty(SHAPE, dtype=np.int16)
    y = np.arange(rows, dtype=np.float32)[:, None]
    x = np.arange(cols, dtype=np.float32)[None, :]
    body = ((x - 256) / 235) ** 2 + ((y - 260) / 175) ** 2 <= 1
    spine = (x - 256) ** 2 + (y - 390) ** 2 <= 28**2
    # Smooth texture: a few random plane waves, 6-40 mm long, 40 HU in all.
    waves = [
        (
            rng.uniform(-1, 1, 3) * 2 * np.pi / rng.uniform(6, 40) * np.array(SPACING),
            rng.uniform(0, 2 * np.pi),
        )
        for _ in range(6)
    ]
    chunk = 20
    for z0 in range(0, depth, chunk):
        z = np.arange(z0, min(z0 + chunk, depth), dtype=np.float32)[:, None, None]
        hu = np.where(body, np.float32(40), np.float32(-1000))[None].repeat(len(z), axis=0)
        for side in (-1, 1):
            lung = (
                ((x - 256 - side * 100) / 75) ** 2
                + ((y - 250) / 115) ** 2
                + ((z - depth / 2) / (0.45 * depth)) ** 2
            ) <= 1
            hu[lung] = -850
        hu[:, spine] = 700
        texture = sum(
            np.float32(40 / len(waves)) * np.sin(k[0] * z + k[1] * y + k[2] * x + phase)
            for k, phase in waves
        )
        hu += texture + rng.standard_normal(hu.shape, dtype=np.float32) * 15
        volume[z0 : z0 + len(z)] = np.clip(np.rint(hu), -1024, 3071)
    return volume


def chest_geometry() -> Geometry:
    """Feet-first (x and z flipped, as LUNA16's TransformMatrix often is), turned 5° about z."""
    a = np.deg2rad(5.0)
    turn = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    direction = turn @ np.diag([-1.0, 1.0, -1.0])
    return Geometry(SPACING, (176.4, -184.4, -51.0), tuple(float(v) for v in direction.ravel()))


def candidate_centers(grid: Geometry, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """World ``(x, y, z)`` of ``CANDIDATES`` points uniform over the voxels, a few at the faces."""
    upper = np.asarray(SHAPE, dtype=np.float64) - 1
    index = rng.uniform(0, 1, (CANDIDATES, 3)) * upper
    num_edge = max(1, round(EDGE_FRACTION * CANDIDATES))
    for n in rng.choice(CANDIDATES, num_edge, replace=False):
        axis = int(rng.integers(3))
        depth = rng.uniform(-0.5, 3.0)
        index[n, axis] = depth if rng.uniform() < 0.5 else upper[axis] - depth
    centers: npt.NDArray[np.float64] = grid.to_world(index)
    return centers


def num_reaching_out(grid: Geometry, centers: npt.NDArray[np.float64]) -> int:
    """How many patches have samples beyond the volume's outer voxel centres."""
    half = (PATCH_SIZE - 1) / 2 * PATCH_SPACING_MM / np.asarray(grid.spacing)
    index = grid.to_voxel(centers)
    upper = np.asarray(SHAPE, dtype=np.float64) - 1
    return int(np.count_nonzero(np.any((index - half < 0) | (index + half > upper), axis=1)))


def per_point(volume: Patches, grid: Geometry, centers: npt.NDArray[np.float64]) -> Patches:
    """The baseline: sparkdl's ``patches.extract_patch`` before ``patch_grid``, once per point."""
    from scipy import ndimage

    from sparkdl.geometry import hu_to_int16

    spacing = np.asarray(grid.spacing, dtype=np.float64)
    steps = (np.arange(PATCH_SIZE) - (PATCH_SIZE - 1) / 2.0) * PATCH_SPACING_MM
    out = np.empty((len(centers), PATCH_SIZE, PATCH_SIZE, PATCH_SIZE), dtype=np.int16)
    for n, center_xyz in enumerate(centers):
        center = grid.to_voxel(center_xyz)
        axes = [center[a] + steps / spacing[a] for a in range(3)]
        low = [max(int(np.floor(ax[0])), 0) for ax in axes]
        high = [min(int(np.ceil(ax[-1])) + 1, volume.shape[a]) for a, ax in enumerate(axes)]
        if any(lo >= hi for lo, hi in zip(low, high)):
            out[n] = PAD_HU
            continue
        block = volume[low[0] : high[0], low[1] : high[1], low[2] : high[2]].astype(np.float32)
        coords = np.meshgrid(*[ax - lo for ax, lo in zip(axes, low)], indexing="ij")
        values = ndimage.map_coordinates(
            block, coords, order=1, mode="constant", cval=float(PAD_HU)
        )
        out[n] = hu_to_int16(values)[0]
    return out


def one_pass(volume: Patches, grid: Geometry, centers: npt.NDArray[np.float64]) -> Patches:
    from sparkdl.patches.grid import cut_patches

    return cut_patches(volume, grid, centers, PATCH_SIZE, PATCH_SPACING_MM, PAD_HU)


def part_1(repeat: int) -> None:
    rng = np.random.default_rng(SEED)
    t0 = time.perf_counter()
    volume = chest_volume(rng)
    grid = chest_geometry()
    centers = candidate_centers(grid, rng)
    print(
        f"volume {SHAPE[0]} × {SHAPE[1]}² int16 ({volume.nbytes / 1024**2:.0f} MB, made in "
        f"{time.perf_counter() - t0:.1f} s), {len(centers)} candidates; {load_text()}",
        flush=True,
    )
    ways: dict[str, Callable[[Patches, Geometry, npt.NDArray[np.float64]], Patches]] = {
        "per point (`map_coordinates`)": per_point,
        "one pass (`sparkdl.patches.grid.cut_patches`)": one_pass,
    }
    timings = {name: Timing([], []) for name in ways}
    results: dict[str, Patches] = {}
    for _ in range(repeat):  # interleaved, so a change of load falls on both ways
        for name, way in ways.items():
            wall0, cpu0 = time.perf_counter(), time.process_time()
            results[name] = way(volume, grid, centers)
            timings[name].cpu_s.append(time.process_time() - cpu0)
            timings[name].wall_s.append(time.perf_counter() - wall0)
    baseline, candidate = (results[name].astype(np.int32) for name in ways)
    difference = np.abs(baseline - candidate)
    worst = int(difference.max())

    print(
        f"\n### (1) {len(centers)} patches of {PATCH_SIZE}³ at {PATCH_SPACING_MM} mm from one "
        f"{SHAPE[0]} × {SHAPE[1]}² volume (median of {repeat})\n"
    )
    print("| way | CPU s | wall s | patches/s (CPU) | patches/s (wall) | CPU ms / patch |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, t in timings.items():
        print(
            f"| {name} | {t.cpu():.2f} | {t.wall():.2f} | {len(centers) / t.cpu():,.0f} | "
            f"{len(centers) / t.wall():,.0f} | {1000 * t.cpu() / len(centers):.2f} |"
        )
    slow, fast = timings.values()
    print(
        f"| per point ÷ one pass | {slow.cpu() / fast.cpu():.2f}× | "
        f"{slow.wall() / fast.wall():.2f}× | | | |"
    )
    print(
        f"\nagreement: max |per point - one pass| = {worst} HU; voxels differing by 1 HU: "
        f"{int(np.count_nonzero(difference)):,} of {difference.size:,}; patches reaching "
        f"outside the volume (padded): {num_reaching_out(grid, centers)}; {load_text()}",
        flush=True,
    )
    if worst > 1:
        raise SystemExit(f"the two ways differ by {worst} HU (> 1): the comparison is void")


# -- part 2: the whole ingest ------------------------------------------------------------------


def num_patients(num_series: int) -> int:
    """Patients for about ``num_series`` series: patient 0 has 2, the others 1.25 on average."""
    return max(1, round((num_series - 0.75) / 1.25))


def synth_cohort(work: Path, num_series: int) -> Path:
    """``sparkdl synth --format mhd`` into ``work`` (reused when a complete one is there)."""
    patients = num_patients(num_series)
    out = work / f"synth_mhd512_p{patients}_c{CANDIDATES}_s{SEED}"
    seconds = cached_synth(
        out, "--patients", str(patients), "--image-size", "512", "--format", "mhd",
        "--candidates-per-series", str(CANDIDATES), "--seed", str(SEED), "--quiet",
    )  # fmt: skip
    if seconds is not None:
        print(f"synth: {patients} patients in {seconds:.0f} s", flush=True)
    return out


def sparkdl_command() -> list[str]:
    return [sys.executable, "-m", "sparkdl"]


def volume_files(mhd: Path) -> tuple[int, int, int]:
    """``(files, voxels, data bytes)`` of the .mhd headers under ``mhd``."""
    files = voxels = size = 0
    for header in sorted(mhd.rglob("*.mhd")):
        lines = (line.partition("=") for line in header.read_text().splitlines())
        fields = {key.strip(): value.strip() for key, _, value in lines}
        files += 1
        voxels += int(np.prod([int(v) for v in fields["DimSize"].split()]))
        size += (header.parent / fields["ElementDataFile"]).stat().st_size
    return files, voxels, size


def _sample_cpu(pid: int, seen: dict[int, float], stop: threading.Event) -> None:
    """CPU seconds (user + system) last seen of every process in ``pid``'s tree."""
    import psutil

    root = psutil.Process(pid)
    while not stop.is_set():
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        for proc in tree:
            try:
                times = proc.cpu_times()
                seen[proc.pid] = times.user + times.system
            except psutil.Error:
                continue
        stop.wait(0.5)


def part_2(
    cohort: Path, out: Path, conf: list[str], key: str, config: Path | None = None
) -> dict[str, Any]:
    """One ``sparkdl ingest`` of the cohort into a fresh ``out`` (removed after): wall and CPU
    seconds, and its manifest. ``config``: an ingest YAML (``--config``)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        *sparkdl_command(),
        "ingest",
        str(cohort / "mhd"),
        "--output",
        str(out),
        "--annotations",
        str(cohort / "annotations.csv"),
        "--candidates",
        str(cohort / "candidates.csv"),
        "--master",
        MASTER,
        *(arg for pair in conf for arg in ("--conf", pair)),
        *(["--config", str(config)] if config is not None else []),
        "--quiet",
    ]
    env = {**os.environ, "SPARKDL_DEID_KEY": key, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[int, float] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_cpu, args=(proc.pid, seen, stop))
    sampler.start()
    _, stderr = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        log = out.with_name("ingest_stderr.log")
        log.write_text(stderr.replace(key, "<key>"))
        raise RuntimeError(
            f"sparkdl ingest failed ({proc.returncode}), its stderr in {log}:\n"
            + stderr[-3000:].replace(key, "<key>")
        )
    manifest: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": wall, "cpu_s": sum(seen.values()), "manifest": manifest}


def table_2(cohort: Path, result: dict[str, Any], conf: list[str]) -> None:
    files, voxels, size = volume_files(cohort / "mhd")
    manifest, wall = result["manifest"], result["wall_s"]
    counts, timings = manifest["counts"], manifest["timings"]
    written, total = manifest["last_run"]["patches_written"], timings["total_s"]
    candidates = sum(1 for _ in (cohort / "candidates.csv").open()) - 1
    confs = "".join(f" --conf {pair}" for pair in conf)
    print(f"\n### (2) `sparkdl ingest{confs}` of {files} .mhd series on {MASTER} (CLI)\n")
    print("| quantity | value |")
    print("| --- | ---: |")
    rows = [
        ("series / volumes", f"{counts['series']} / {counts['volumes']}"),
        ("voxels (int16)", f"{voxels:,} ({size / GB:.2f} GB of .raw)"),
        ("candidates.csv rows", f"{candidates:,}"),
        ("patches written", f"{written:,}"),
        ("wall s (process)", f"{wall:.1f}"),
        ("CPU s (process tree)", f"{result['cpu_s']:.1f}"),
        ("patches/s (wall)", f"{written / wall:.1f}"),
        ("ingest `total_s`", f"{total:.1f}"),
        ("patches/s (`total_s`)", f"{written / total:.1f}"),
        ("start-up + exit s (wall - `total_s`)", f"{wall - total:.1f}"),
    ]
    rows += [
        (f"`timings.{stage}`", f"{timings[stage]:.1f} ({100 * timings[stage] / total:.0f}%)")
        for stage in STAGES
        if stage in timings
    ]
    rows += [
        (f"`timings.{stage}`", f"{seconds:.1f}")
        for stage, seconds in timings.items()
        if stage not in (*STAGES, "total_s")
    ]
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(f"\n{load_text()}", flush=True)


# -- part 3: the whole ingest, candidate generation off and on ---------------------------------

#: ``candidates.generate`` of each way of part 3, in the order they run.
GENERATE = ("never", "always")


def part_3(cohort: Path, work: Path, conf: list[str]) -> dict[str, dict[str, Any]]:
    """Part 2's ingest twice, same inputs and key, fresh outputs: ``candidates: {generate:
    never}`` (the listed candidates only), then ``always`` (generated ones besides)."""
    key = secrets.token_hex(32)
    results = {}
    for generate in GENERATE:
        config = work / f"ingest_generate_{generate}.yaml"
        config.write_text(f"candidates:\n  generate: {generate}\n")
        print(f"ingest, candidates.generate {generate}: {load_text()}", flush=True)
        results[generate] = part_2(cohort, work / "ingest_out", conf, key, config)
    return results


def quantities_3(result: dict[str, Any], files: int) -> dict[str, float]:
    """The numbers of one ingest of part 3, by row name."""
    manifest = result["manifest"]
    timings, last_run = manifest["timings"], manifest["last_run"]
    out = {
        "wall s (process)": result["wall_s"],
        "CPU s (process tree)": result["cpu_s"],
        "series/s (wall)": manifest["counts"]["series"] / result["wall_s"],
        "files/s (wall; an .mhd and its .raw)": 2 * files / result["wall_s"],
        "ingest `total_s`": timings["total_s"],
        "candidates generated": last_run.get("candidates_generated", 0),
        "patches written": last_run["patches_written"],
    }
    stages = [*STAGES, *(s for s in timings if s not in (*STAGES, "total_s"))]
    out.update({f"`timings.{stage}`": timings[stage] for stage in stages if stage in timings})
    return out


def table_3(cohort: Path, results: dict[str, dict[str, Any]], conf: list[str]) -> None:
    files, voxels, size = volume_files(cohort / "mhd")
    confs = "".join(f" --conf {pair}" for pair in conf)
    off, on = (quantities_3(results[generate], files) for generate in GENERATE)
    counts = results[GENERATE[0]]["manifest"]["counts"]
    print(
        f"\n### (3) `sparkdl ingest{confs} --candidates --config` of {files} .mhd series, "
        f"{counts['series']} series / {counts['volumes']} volumes ({voxels / 1e6:,.0f}M voxels, "
        f"{size / GB:.2f} GB) on {MASTER}: candidate generation off and on\n"
    )
    print("| quantity | `generate: never` | `generate: always` | always - never |")
    print("| --- | ---: | ---: | ---: |")
    for name in [*off, *(name for name in on if name not in off)]:
        a, b = off.get(name, 0.0), on.get(name, 0.0)
        digits = 3 if "/s" in name else 0 if name.startswith(("candidates", "patches")) else 1
        print(f"| {name} | {a:,.{digits}f} | {b:,.{digits}f} | {b - a:+,.{digits}f} |")
    print(f"\n{load_text()}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way in part 1")
    parser.add_argument("--series", type=int, default=20, help="about this many series in part 2")
    parser.add_argument("--only", default=",".join(PARTS), help="parts to run, e.g. 1 or 1,2,3")
    parser.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Spark conf for the ingest of parts 2 and 3, repeatable (e.g. spark.driver.memory=8g)",
    )
    parser.add_argument("--work", default=None, help="keep the cohort here (default: a temp dir)")
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    if not parts <= set(PARTS) or args.repeat < 1 or args.series < 1:
        parser.error(
            f"--only takes parts from {PARTS}, --repeat and --series >= 1. Received: "
            f"--only {args.only} --repeat {args.repeat} --series {args.series}"
        )
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_candidates_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, {load_text()}", flush=True)
    if "1" in parts:
        part_1(args.repeat)
    if "2" in parts:
        cohort = synth_cohort(work, args.series)
        result = part_2(cohort, work / "ingest_out", args.conf, secrets.token_hex(32))
        table_2(cohort, result, args.conf)
    if "3" in parts:
        cohort = synth_cohort(work, args.series)
        table_3(cohort, part_3(cohort, work, args.conf), args.conf)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
