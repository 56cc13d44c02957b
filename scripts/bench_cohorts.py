"""Synthetic cohorts for the benchmark scripts, made once per settings and kept under ``--work``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path


def cached_synth(out: Path, *args: str) -> float | None:
    """``sparkdl synth OUT ARGS...`` unless a complete cohort is at ``out``; its seconds, or
    None when the cohort was already there (``out/complete`` marks a finished one)."""
    done = out / "complete"
    if done.exists():
        return None
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "sparkdl", "synth", str(out), *args],
        check=True,
        capture_output=True,
        text=True,
    )
    done.write_text("")
    return time.perf_counter() - start


def _copy_file(job: tuple[Path, Path, int]) -> None:
    """One DICOM file as patient copy ``k``: every instance UID remapped (registered UIDs,
    such as SOP classes and transfer syntaxes, kept), PatientID suffixed with ``-k``."""
    import pydicom
    from pydicom.uid import UID, generate_uid

    source, target, k = job
    ds = pydicom.dcmread(source)

    def remap(value: str) -> str:
        return value if UID(value).name != value else generate_uid(entropy_srcs=[value, str(k)])

    for dataset in (ds, ds.file_meta):
        for element in dataset.iterall():
            if element.VR == "UI" and element.value:
                if element.VM > 1:
                    element.value = [remap(str(v)) for v in element.value]
                else:
                    element.value = remap(str(element.value))
    ds.PatientID = f"{ds.get('PatientID', '')}-{k}"
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target)


def copied_cohort(source: Path, out: Path, copies: int) -> float | None:
    """``copies`` copies of the DICOM cohort ``source`` under ``out/dicom/copy<k>/``, each one a new
    set of patients (instance UIDs remapped, PatientID suffixed), unless a complete one is
    there; its seconds, or None when it was. Synthesizing 512² CT costs about a minute per
    patient on one core; a copy costs a pydicom read and write per file."""
    from concurrent.futures import ProcessPoolExecutor

    done = out / "complete"
    if done.exists():
        return None
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    files = sorted(p for p in source.rglob("*") if p.is_file())
    jobs = [
        (path, out / "dicom" / f"copy{k}" / path.relative_to(source), k)
        for k in range(copies)
        for path in files
    ]
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_copy_file, jobs, chunksize=64))
    done.write_text("")
    return time.perf_counter() - start
