"""Candidate generation (``sparkdl.candidates``): CPU seconds and peak memory per scan, then
sensitivity and candidates per scan on synthetic cohorts, several ways in one run.

The ways (module constants of ``sparkdl.candidates.generate`` patched in this process, or
``CandidateOptions``):

* ``default``: a 1.4 mm working grid (block means), clip at -600 HU, the "blob" response;
* ``native spacing``: no working grid (``working_spacing_mm=0.5``), the scan's own voxels;
* ``dot filter``: Li et al.'s dot response (``RESPONSE="dot"``) instead of "blob";
* ``clip -300``: clipped at the top of the part-solid range instead (``CLIP_HU=-300``).

Part ``1`` (speed, memory): a LUNA16-sized synthetic chest (300 × 512 × 512 int16, spacing
1.25 × 0.7 × 0.7 mm; a ``sparkdl.synth`` phantom with 5 nodules, 20 HU of noise) and a 128²
one (the default synthetic cohort's size). Each way runs in a child process of its own, so
its peak RSS (``VmHWM``) is its own: the input volume and the imports are in it (listed as
"before"). CPU seconds: ``time.process_time`` around ``generate_candidates``, the median of
``--repeat`` runs (the machine is shared, so wall time moves with the load).

Part ``3``: the real LIDC-IDRI-0002 series (``../shared/data/lidc-idri``, skipped when absent):
candidates and the rank of the first hit on the nodule its readers outlined.

Part ``2`` (sensitivity): ``default cohort``: ``synthesize_volume_cohort`` (``--patients``
patients, ``--image-size``, MetaImage files read back with ``sparkdl.volume_files``), its
``annotations.csv`` nodules; ``hard cohort``: ``--hard-scans`` phantoms with 5 nodules each,
35 % against the pleura and 35 % beside a vessel (``make_phantom(pleural_fraction=0.35,
vascular_fraction=0.35)``), rendered at ``--hard-size`` pixels over 358 mm and 1.25 mm slices.
A hit is a candidate within the nodule's radius of its centre (LUNA16's rule); "@N" is the
sensitivity with only the N strongest candidates of each scan.

    .venv/bin/python scripts/bench_candidates_gen.py [--repeat 3] [--patients 20]
        [--image-size 128] [--hard-scans 20] [--hard-size 256] [--only 1,3,2] [--work DIR]

With ``--work DIR`` the synthetic volumes are kept there and reused by the next run.

Measured on 2 shared cores (load average 3–5: another engineer's tests ran), ``--image-size
512 --hard-size 512`` (and the defaults, in brackets):

* (1) LUNA16-sized, default: 0.81 CPU s, peak RSS 429 MB of which 266 MB before the call
  (the 157 MB input, the imports); native spacing 2.36 s and 893 MB; dot filter 0.83 s;
  clip -300 0.98 s. 128²: 0.36 s, 178 MB, whatever the way.
* (3) LIDC-IDRI-0002 (261 × 512², 1.25 × 0.68² mm), 200 candidates each way: the readers'
  23 mm ground-glass nodule is hit at rank 8 (default), 5 (dot filter), and not within 200
  with native spacing or clip -300; 1.3–1.5 CPU s, native 7.0 s.
* (2) default cohort, 20 patients, 28 series, 58 nodules: default 100 % (@25 100 %) [128²:
  100 %, @25 94.8 %, 118 candidates/scan]; dot filter 100 % [96.6 %]; clip -300 100 %
  [98.3 %]. Hard cohort, 20 scans, 100 nodules: default 100 % (@25 100 %) [256²: 100 %, @25
  100 %]; native spacing 96 % (@25 89 %) [100 %]; dot filter 99 % (@25 97 %) [99 %];
  clip -300 99 % [100 %]. 200 candidates per scan (the cap) on 512² and 256² scans, whose
  noise gives weak peaks; 0.74–0.92 CPU s per scan (default), 1.8–3.1 s native.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import sparkdl.candidates.generate as gen
from sparkdl.candidates import Candidate, CandidateOptions, generate_candidates
from sparkdl.geometry import Geometry, hu_to_int16
from sparkdl.synth import synthesize_volume_cohort
from sparkdl.synth.anatomy import make_phantom
from sparkdl.synth.phantom import Grid, add_noise, render_hu
from sparkdl.volume_files import read_volume

#: name → (options, module constants of sparkdl.candidates.generate to patch)
WAYS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "default": ({}, {}),
    "native spacing": ({"working_spacing_mm": 0.5}, {}),
    "dot filter": ({}, {"RESPONSE": "dot"}),
    "clip -300": ({}, {"CLIP_HU": -300.0}),
}
CAPS = (25, 50, 100)
LIDC = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lidc-idri"
Volume = npt.NDArray[np.int16]
Nodules = list[tuple[npt.NDArray[np.float64], float]]  # centre (x, y, z) mm, radius mm


@contextmanager
def way(name: str) -> Iterator[CandidateOptions]:
    """The options of a way, with its module constants patched for the duration."""
    options, patches = WAYS[name]
    saved = {key: getattr(gen, key) for key in patches}
    for key, value in patches.items():
        setattr(gen, key, value)
    try:
        yield CandidateOptions(**options)
    finally:
        for key, value in saved.items():
            setattr(gen, key, value)


def run(hu: Volume, g: Geometry, options: CandidateOptions) -> tuple[list[Candidate], float]:
    start = time.process_time()
    found = generate_candidates(hu, g.spacing, g.origin, g.direction, options)
    return found, time.process_time() - start


def render(
    seed: int, size: int, pixel: float, dz: float, slices: int, attached: float = 0.0
) -> tuple[Volume, Geometry, Nodules]:
    """A synthetic chest of 5 nodules (``attached``: the share on the pleura, and again
    beside a vessel), ``size``² pixels of ``pixel`` mm, ``slices`` of ``dz`` mm centred on
    the lungs, 20 HU of noise."""
    rng = np.random.default_rng(seed)
    phantom = make_phantom(
        rng,
        min_nodule_radius_mm=1.1 * float(np.sqrt(2 * (pixel / 2) ** 2 + (dz / 2) ** 2)),
        num_nodules=5,
        pleural_fraction=attached,
        vascular_fraction=attached,
    )
    lo, hi = phantom.lung_z_range
    origin = (
        phantom.center[0] - (size - 1) * pixel / 2,
        phantom.center[1] - (size - 1) * pixel / 2,
        (lo + hi) / 2 - (slices - 1) * dz / 2,
    )
    grid = Grid(origin, ((0, 0, dz), (0, pixel, 0), (pixel, 0, 0)), (slices, size, size))
    hu = hu_to_int16(add_noise(render_hu(phantom, grid), rng, 20.0))[0]
    geometry = Geometry((dz, pixel, pixel), origin, (1, 0, 0, 0, 1, 0, 0, 0, 1))
    return hu, geometry, [(np.asarray(n.center), n.radius_mm) for n in phantom.nodules]


def cached(work: Path, name: str, make: Any) -> tuple[Volume, Geometry, Nodules]:
    path = work / f"{name}.npz"
    if not path.exists():
        hu, g, nodules = make()
        centres = np.array([c for c, _ in nodules]).reshape(-1, 3)
        radii = np.array([r for _, r in nodules])
        np.savez(path, hu=hu, spacing=g.spacing, origin=g.origin, direction=g.direction,
                 centres=centres, radii=radii)  # fmt: skip
    data = np.load(path)
    geometry = Geometry(tuple(data["spacing"]), tuple(data["origin"]), tuple(data["direction"]))
    return data["hu"], geometry, list(zip(data["centres"], data["radii"].tolist()))


# -- part 1: speed and memory, one child process per way ----------------------------------------


def child(name: str, path: str, repeat: int) -> None:
    """Run one way on one cached volume; print one JSON line."""
    hu, g, _ = cached(Path(path).parent, Path(path).stem, None)
    before = _status_mb("VmRSS")
    times: list[float] = []
    found: list[Candidate] = []
    with way(name) as options:
        for _ in range(repeat):
            found, seconds = run(hu, g, options)
            times.append(seconds)
    peak = _status_mb("VmHWM")  # not ru_maxrss: Linux carries that over exec from the parent
    print(json.dumps({"cpu_s": statistics.median(times), "before_mb": before, "peak_mb": peak,
                      "candidates": len(found)}))  # fmt: skip


def _status_mb(key: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, MB, from ``/proc/self/status``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def part1(work: Path, repeat: int) -> None:
    volumes = {  # name: (label, size, pixel mm, slice mm, slices)
        "luna": ("300×512² at 1.25×0.7² mm (LUNA16-sized)", 512, 0.7, 1.25, 300),
        "small": ("110×128² at 2.5×2.8² mm (default synth)", 128, 2.8, 2.5, 110),
    }
    print(f"\n## 1. CPU and memory per scan (median of {repeat}; {_load()})\n")
    print("| volume | way | CPU s | candidates | RSS before MB | peak RSS MB |")
    print("|---|---|---:|---:|---:|---:|")
    for name, (label, size, pixel, dz, slices) in volumes.items():
        cached(work, name, partial(render, 0, size, pixel, dz, slices))
        for w in WAYS:
            out = subprocess.run(
                [sys.executable, __file__, "--child", w, str(work / f"{name}.npz"), str(repeat)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"| {label} | {w} | {r['cpu_s']:.2f} | {r['candidates']} | "
                  f"{r['before_mb']:.0f} | {r['peak_mb']:.0f} |", flush=True)  # fmt: skip


# -- part 2: sensitivity and candidates per scan ------------------------------------------------


def default_cohort(
    work: Path, patients: int, size: int
) -> Iterator[tuple[Volume, Geometry, Nodules]]:
    out = work / f"cohort_{size}_{patients}"
    if not out.exists():
        synthesize_volume_cohort(out, num_patients=patients, image_size=size, volume_format="mhd")
    labels: dict[str, Nodules] = {}
    with (out / "annotations.csv").open() as f:
        for row in csv.DictReader(f):
            centre = np.array([float(row[k]) for k in ("coordX", "coordY", "coordZ")])
            labels.setdefault(row["seriesuid"], []).append((centre, float(row["diameter_mm"]) / 2))
    for mhd in sorted((out / "mhd" / "subset0").glob("*.mhd")):
        volume = read_volume(mhd.name, mhd.read_bytes(), partial(_read_beside, mhd))
        yield volume.array_zyx, volume.geometry, labels.get(mhd.stem, [])


def _read_beside(mhd: Path, relative: str) -> bytes:
    return (mhd.parent / relative).read_bytes()


def hard_cohort(work: Path, scans: int, size: int) -> Iterator[tuple[Volume, Geometry, Nodules]]:
    pixel = 0.7 * 512 / size
    for seed in range(scans):
        yield cached(
            work,
            f"hard_{size}_{seed}",
            lambda s=seed: render(1000 + s, size, pixel, 1.25, 300, 0.35),
        )


def score(found: list[Candidate], nodules: Nodules) -> list[int]:
    """Rank of each nodule's first hit (-1: missed)."""
    xyz = np.array([[c.coord_x, c.coord_y, c.coord_z] for c in found]).reshape(-1, 3)
    ranks = []
    for centre, radius in nodules:
        inside = np.flatnonzero(np.linalg.norm(xyz - centre, axis=1) < radius)
        ranks.append(int(inside[0]) if inside.size else -1)
    return ranks


def part2(cohorts: dict[str, Callable[[], Iterator[tuple[Volume, Geometry, Nodules]]]]) -> None:
    print(f"\n## 2. Sensitivity and candidates per scan ({_load()})\n")
    caps = " | ".join(f"@{n}" for n in CAPS)
    print(f"| cohort | way | scans | nodules | hit | sensitivity | {caps} | cands/scan median "
          "(max) | CPU s/scan median |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|" + "---:|" * len(CAPS) + "---:|---:|")
    for label, scans in cohorts.items():
        for w in WAYS:
            ranks: list[int] = []
            counts, cpu = [], []
            with way(w) as options:
                for hu, g, nodules in scans():
                    found, seconds = run(hu, g, options)
                    ranks += score(found, nodules)
                    counts.append(len(found))
                    cpu.append(seconds)
            hits = sum(r >= 0 for r in ranks)
            at = " | ".join(f"{sum(0 <= r < n for r in ranks) / len(ranks):.3f}" for n in CAPS)
            print(f"| {label} | {w} | {len(counts)} | {len(ranks)} | {hits} | "
                  f"{hits / len(ranks):.3f} | {at} | {statistics.median(counts):.0f} "
                  f"({max(counts)}) | {statistics.median(cpu):.2f} |", flush=True)  # fmt: skip


# -- part 3: the real series -------------------------------------------------------------------


def real_series() -> tuple[Volume, Geometry, Nodules] | None:
    """LIDC-IDRI-0002 (``../shared/data/lidc-idri``) as HU along the slice normal, and the
    nodule(s) its readers outlined; None when it is not there."""
    import pydicom

    from sparkdl.geometry import direction_from_iop, slice_normal, to_hounsfield
    from sparkdl.lidc import SliceGeometry, cluster_marks, parse_read_message, read_marks

    found = sorted(LIDC.glob("LIDC-IDRI-0002/**/071.xml"))
    if not found:
        return None
    slices = [pydicom.dcmread(path) for path in found[0].parent.glob("*.dcm")]
    normal = slice_normal(slices[0].ImageOrientationPatient)
    slices.sort(key=lambda ds: float(np.asarray(ds.ImagePositionPatient, dtype=float) @ normal))
    heights = [float(np.asarray(ds.ImagePositionPatient, dtype=float) @ normal) for ds in slices]
    dz = float(np.median(np.diff(heights)))
    hu = np.stack(
        [hu_to_int16(to_hounsfield(d.pixel_array, d.RescaleSlope, d.RescaleIntercept))[0]
         for d in slices]
    )  # fmt: skip
    rows, columns = (float(v) for v in slices[0].PixelSpacing)
    origin = tuple(float(v) for v in slices[0].ImagePositionPatient)
    direction = tuple(direction_from_iop(slices[0].ImageOrientationPatient).ravel())
    geometry = Geometry((dz, rows, columns), origin, direction)  # type: ignore[arg-type]
    where = {
        str(d.SOPInstanceUID): SliceGeometry(
            tuple(float(v) for v in d.ImagePositionPatient),  # type: ignore[arg-type]
            tuple(float(v) for v in d.ImageOrientationPatient),  # type: ignore[arg-type]
            (rows, columns),
            dz,
        )
        for d in slices
    }
    marks, _ = read_marks(parse_read_message(found[0].read_bytes()), where)
    nodules = [
        (np.asarray(n.centre_lps), n.diameter_mm / 2)
        for n in cluster_marks(marks)
        if n.diameter_mm is not None
    ]
    return hu, geometry, nodules


def part3() -> None:
    series = real_series()
    print(f"\n## 3. The real series LIDC-IDRI-0002 ({_load()})\n")
    if series is None:
        print(f"(skipped: not under {LIDC.resolve()})")
        return
    hu, g, nodules = series
    print("| way | candidates | rank of the outlined nodule's first hit | its score | CPU s |")
    print("|---|---:|---:|---:|---:|")
    for w in WAYS:
        with way(w) as options:
            found, seconds = run(hu, g, options)
        ranks = score(found, nodules)
        scores = [f"{found[r].score:.1f}" if r >= 0 else "-" for r in ranks]
        print(f"| {w} | {len(found)} | {ranks} | {', '.join(scores)} | {seconds:.2f} |")


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.2f} / {five:.2f} / {fifteen:.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--hard-scans", type=int, default=20)
    parser.add_argument("--hard-size", type=int, default=256)
    parser.add_argument("--only", default="1,3,2")
    parser.add_argument("--work", type=Path)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        parts = args.only.split(",")
        if "1" in parts:
            part1(work, args.repeat)
        if "3" in parts:
            part3()
        if "2" in parts:
            part2(
                {
                    f"default {args.image_size}²": lambda: default_cohort(
                        work, args.patients, args.image_size
                    ),
                    f"hard {args.hard_size}²": lambda: hard_cohort(
                        work, args.hard_scans, args.hard_size
                    ),
                }
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
