"""``synthesize_cohort``: a synthetic chest-CT archive with nodules, PHI-laden headers and
LUNA16-style labels, laid out the way hospital exports arrive (nested random folders, or
zip / tar / tar.gz archives).

Layout of ``out_dir``::

    dicom/            only DICOM: loose files, or .zip / .tar / .tar.gz archives of them
    mhd/ or nifti/    with ``volume_format`` "mhd" / "nifti" instead: one volume file per axial
                      series, named by its SeriesInstanceUID as LUNA16 names its scans
                      (``subset0/<uid>.mhd`` + ``.raw``, or ``subset0/<uid>.nii.gz``), HU as
                      int16; no other objects (LUNA16 ships none)
    annotations.csv   seriesuid,coordX,coordY,coordZ,diameter_mm,malignancy   (world mm, LPS)
    candidates.csv    seriesuid,coordX,coordY,coordZ,class
    phi.json          every fake PHI string written into the headers (for leak scans)

Each patient is drawn from its own seed sequence ``(seed, patient index)``, so patient ``i``
is the same in a cohort of 5 and of 50 (apart from the variants assigned to its series).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydicom.dataset import Dataset

from sparkdl.errors import ConfigError, InputError
from sparkdl.synth import dicom_writer as dw
from sparkdl.synth.anatomy import make_phantom, sample_negatives
from sparkdl.synth.archive import ArchiveWriter
from sparkdl.synth.dicom_modules import make_uid, study_context
from sparkdl.synth.identity import make_identity, phi_strings
from sparkdl.synth.labels import candidate_rows, write_labels
from sparkdl.synth.lidc_xml import read_message_for
from sparkdl.synth.part10 import encode
from sparkdl.synth.phantom import Grid, add_noise, render_hu
from sparkdl.synth.variants import (
    VARIANTS,
    draw_sampling,
    localizer_grids,
    make_series_spec,
    to_stored,
    voxel_half_diagonal,
)
from sparkdl.synth.volume_export import VolumeFormat, write_volumes

logger = logging.getLogger(__name__)

ArchiveKind = Literal["none", "zip", "tar"]
SeriesKind = Literal["axial_ct", "localizer", "dose_report", "structured_report"]


@dataclass(frozen=True)
class SeriesRecord:
    """One written series: its original SeriesInstanceUID and what it is."""

    series_uid: str
    patient_index: int
    kind: SeriesKind
    variant: str  # a name from VARIANTS for axial CT, else the kind
    num_instances: int
    transfer_syntax_uid: str


@dataclass(frozen=True)
class NoduleRecord:
    """One annotation row, with the ground truth the CSV does not carry."""

    series_uid: str
    patient_index: int
    center_mm: tuple[float, float, float]
    diameter_mm: float
    malignancy: int
    texture: str  # solid, part_solid, ground_glass
    margin: str  # smooth, lobulated, spiculated


@dataclass(frozen=True)
class CohortSummary:
    """What :func:`synthesize_cohort` wrote. ``num_series`` counts the axial CT series (the
    ones ingest should turn into volumes); ``num_files`` counts every DICOM instance, loose
    or inside an archive; ``num_nodules`` counts annotation rows (one per nodule per series)."""

    out_dir: Path
    dicom_dir: Path
    annotations_csv: Path
    candidates_csv: Path
    phi_json: Path
    archive: ArchiveKind
    num_patients: int
    num_series: int
    num_other_series: int
    num_files: int
    num_archives: int
    num_nodules: int
    num_candidates: int
    series: tuple[SeriesRecord, ...] = field(repr=False)
    nodules: tuple[NoduleRecord, ...] = field(repr=False)


@dataclass
class _Patient:
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (series key, file bytes)
    volumes: list[tuple[str, Grid, np.ndarray]] = field(default_factory=list)  # uid, grid, HU
    series: list[SeriesRecord] = field(default_factory=list)
    nodules: list[NoduleRecord] = field(default_factory=list)
    candidates: list[tuple[str, float, float, float, int]] = field(default_factory=list)
    phi: list[str] = field(default_factory=list)


def synthesize_cohort(
    out_dir: str | Path,
    *,
    num_patients: int = 10,
    seed: int = 0,
    archive: ArchiveKind = "none",
    image_size: int = 128,
    lidc_xml: bool = False,
    candidates_per_series: int | None = None,
) -> CohortSummary:
    """Write a synthetic chest-CT DICOM cohort to ``out_dir`` (see the module docstring and
    :func:`_synthesize`)."""
    return _synthesize(
        out_dir, num_patients, seed, archive, image_size, lidc_xml, "dicom", candidates_per_series
    )


def synthesize_volume_cohort(
    out_dir: str | Path,
    *,
    num_patients: int = 10,
    seed: int = 0,
    image_size: int = 128,
    volume_format: VolumeFormat = "mhd",
    candidates_per_series: int | None = None,
) -> CohortSummary:
    """The cohort :func:`synthesize_cohort` writes with the same arguments, each axial series
    as one MetaImage (``mhd``) or NIfTI (``nifti``) file named by its SeriesInstanceUID, as
    LUNA16 ships its scans; no other objects."""
    return _synthesize(
        out_dir, num_patients, seed, "none", image_size, False, volume_format, candidates_per_series
    )


def _synthesize(
    out_dir: str | Path,
    num_patients: int,
    seed: int,
    archive: ArchiveKind,
    image_size: int,
    lidc_xml: bool,
    volume_format: VolumeFormat,
    candidates_per_series: int | None,
) -> CohortSummary:
    """Write a synthetic chest-CT cohort to ``out_dir`` (see the module docstring).

    With ``lidc_xml`` each axial series also gets an LIDC read message (XML, beside its
    slices): 2-4 simulated readers outline its nodules with jitter and rate their malignancy
    (5 for a malignant nodule, 1 for a benign one, each reader within one step of it).

    Any cohort of 7 or more patients holds every variant in ``VARIANTS`` at least once: the
    first series cycle through them, later ones draw at random. Patient 0 always has two axial
    series, a localizer, a dose-report Secondary Capture and a Comprehensive SR; others have
    them at random. The same arguments write the same bytes.

    ``volume_format`` "mhd" or "nifti" writes each axial series as one volume file instead
    (loose, no archive, no read message). ``candidates_per_series`` makes ``candidates.csv``
    LUNA16-sized: that many non-nodule points per series (two thirds in the lungs, one third
    on vessels) besides the nodules.

    Long, with eight parameters: the cohort's steps in order, each argument a user's choice
    passed through.
    """
    _check_arguments(num_patients, seed, archive, image_size)
    if volume_format not in ("dicom", "mhd", "nifti"):
        raise ConfigError(f"volume_format must be dicom, mhd or nifti. Received: {volume_format!r}")
    if candidates_per_series is not None and candidates_per_series < 0:
        raise ConfigError(f"candidates_per_series must be >= 0. Received: {candidates_per_series}")
    out = Path(out_dir)
    dicom_dir = out / ("dicom" if volume_format == "dicom" else volume_format)
    if dicom_dir.exists() and any(dicom_dir.iterdir()):
        raise InputError(
            f"{dicom_dir} already holds files; synthesize into an empty or new "
            "directory so the cohort is not mixed with another one"
        )
    dicom_dir.mkdir(parents=True, exist_ok=True)

    # Separate streams, so the packaging never changes the content and vice versa.
    cohort_rng, names_rng, archives_rng = (
        np.random.default_rng(np.random.SeedSequence([seed, stream])) for stream in (2, 3, 4)
    )
    writer = ArchiveWriter(dicom_dir, archive, num_patients, names_rng, archives_rng)
    records: list[SeriesRecord] = []
    nodules: list[NoduleRecord] = []
    candidates: list[tuple[str, float, float, float, int]] = []
    phi: set[str] = set()
    num_files = 0
    for index in range(num_patients):
        num_axial_before = sum(r.kind == "axial_ct" for r in records)
        patient = _synthesize_patient(
            seed,
            index,
            image_size,
            num_axial_before,
            cohort_rng,
            lidc_xml,
            candidates_per_series,
            volumes_only=volume_format != "dicom",
        )
        if volume_format == "dicom":
            writer.add_patient(patient.files)
            num_files += len(patient.files)
        else:
            num_files += write_volumes(dicom_dir / "subset0", patient.volumes, volume_format)
        records += patient.series
        nodules += patient.nodules
        candidates += patient.candidates
        phi.update(patient.phi)
        logger.debug(
            "synthetic patient %d: %d series, %d files",
            index,
            len(patient.series),
            len(patient.files),
        )
    num_archives = writer.close()

    annotation_rows = [(n.series_uid, *n.center_mm, n.diameter_mm, n.malignancy) for n in nodules]
    annotations_csv, candidates_csv, phi_json = write_labels(out, annotation_rows, candidates, phi)
    axial = [r for r in records if r.kind == "axial_ct"]
    return CohortSummary(
        out_dir=out,
        dicom_dir=dicom_dir,
        annotations_csv=annotations_csv,
        candidates_csv=candidates_csv,
        phi_json=phi_json,
        archive=archive,
        num_patients=num_patients,
        num_series=len(axial),
        num_other_series=len(records) - len(axial),
        num_files=num_files,
        num_archives=num_archives,
        num_nodules=len(nodules),
        num_candidates=len(candidates),
        series=tuple(records),
        nodules=tuple(nodules),
    )


def _check_arguments(num_patients: int, seed: int, archive: str, image_size: int) -> None:
    if num_patients < 1:
        raise ConfigError(f"num_patients must be at least 1. Received: num_patients={num_patients}")
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer. Received: seed={seed}")
    if archive not in ("none", "zip", "tar"):
        raise ConfigError(f"archive must be one of none, zip, tar. Received: archive={archive!r}")
    if not 32 <= image_size <= 1024:
        raise ConfigError(f"image_size must be between 32 and 1024. Received: {image_size}")


def _synthesize_patient(
    seed: int,
    index: int,
    image_size: int,
    axial_before: int,
    cohort_rng: np.random.Generator,
    lidc_xml: bool = False,
    candidates_per_series: int | None = None,
    volumes_only: bool = False,
) -> _Patient:
    """One patient's files, series, nodules, candidates and PHI strings; with
    ``volumes_only`` its axial series' HU volumes instead of any file (the same draws).

    Long on purpose: it draws from the patient's six random streams in one visible order,
    and that order is what makes the same seed write the same bytes.

    Long, with eight parameters: one patient's series in the order a scanner writes them.
    """
    plan, who, anatomy, geometry, noise, extras = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, 1, index]).spawn(6)
    )
    num_axial = 2 if index == 0 else 1 + int(plan.uniform() < 0.25)
    with_localizer = index == 0 or plan.uniform() < 0.5
    with_dose_report = index == 0 or plan.uniform() < 0.4
    with_report = index == 0 or plan.uniform() < 0.4
    num_nodules = int(plan.integers(1, 4))
    variants = []
    for j in range(num_axial):
        n = axial_before + j
        variants.append(VARIANTS[n] if n < len(VARIANTS) else str(cohort_rng.choice(VARIANTS)))

    identity = make_identity(who)
    ctx = study_context(seed, index, identity, who)
    samplings = [draw_sampling(geometry, v, image_size) for v in variants]
    min_radius = 1.1 * max(voxel_half_diagonal(*s) for s in samplings)
    phantom = make_phantom(anatomy, min_nodule_radius_mm=min_radius, num_nodules=num_nodules)
    negatives_per_nodule = [int(anatomy.integers(3, 6)) for _ in phantom.nodules]
    num_negatives = sum(negatives_per_nodule)
    negatives = sample_negatives(
        anatomy, phantom, num_negatives - num_negatives // 2, num_negatives // 2
    )
    patient = _Patient(phi=phi_strings(identity, with_report=with_report))

    for j, (variant, sampling) in enumerate(zip(variants, samplings)):
        number = j + 1
        series_uid = make_uid(seed, index, number, "series")
        spec = make_series_spec(
            geometry,
            variant,
            image_size=image_size,
            sampling=sampling,
            body_center=phantom.center,
            lung_z_range=phantom.lung_z_range,
        )
        hu = add_noise(render_hu(phantom, spec.grid), noise, spec.noise_hu)
        if volumes_only:
            patient.volumes.append((series_uid, spec.grid, hu))
        else:
            files = dw.ct_series_files(ctx, spec, series_uid, number, to_stored(hu, spec))
            patient.files += [(series_uid, data) for data in files]
        if lidc_xml and not volumes_only:
            read = read_message_for(
                files, phantom.nodules, seed=seed * 100_003 + index * 101 + number
            )
            patient.files.append((series_uid, read))
        patient.series.append(
            SeriesRecord(
                series_uid, index, "axial_ct", variant, spec.num_slices, spec.transfer_syntax_uid
            )
        )
        for nodule in phantom.nodules:
            patient.nodules.append(
                NoduleRecord(
                    series_uid,
                    index,
                    nodule.center,
                    nodule.diameter_mm,
                    int(nodule.malignant),
                    nodule.texture,
                    nodule.margin,
                )
            )
        patient.candidates += candidate_rows(
            series_uid, phantom, negatives, extras, candidates_per_series
        )

    if volumes_only:  # LUNA16 ships no other objects; nothing below draws for the series above
        return patient
    number = num_axial
    if with_localizer:
        number += 1
        uid = make_uid(seed, index, number, "series")
        views = localizer_grids(phantom, image_size)[: 1 + int(extras.uniform() < 0.5)]
        _add_series(
            patient,
            index,
            "localizer",
            [
                dw.localizer_image(
                    ctx, uid, number, i, grid, add_noise(render_hu(phantom, grid), noise, 10.0)[0]
                )
                for i, grid in enumerate(views)
            ],
        )
    if with_dose_report:
        number += 1
        uid = make_uid(seed, index, number, "series")
        _add_series(patient, index, "dose_report", [dw.dose_report(ctx, uid, number, extras)])
    if with_report:
        number += 1
        uid = make_uid(seed, index, number, "series")
        _add_series(patient, index, "structured_report", [dw.structured_report(ctx, uid, number)])
    return patient


def _add_series(patient: _Patient, index: int, kind: SeriesKind, instances: list[Dataset]) -> None:
    """Encode a non-axial series (one dataset per instance) and record it."""
    first = instances[0]
    patient.files += [(first.SeriesInstanceUID, encode(ds)) for ds in instances]
    patient.series.append(
        SeriesRecord(
            first.SeriesInstanceUID,
            index,
            kind,
            kind,
            len(instances),
            first.file_meta.TransferSyntaxUID,
        )
    )
