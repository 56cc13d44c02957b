"""``conf/ingest.yaml``: the ingest job's configuration, one section per stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sparkdl.assembly.options import VolumeOptions
from sparkdl.candidates import CandidateOptions
from sparkdl.config import from_mapping, read_yaml
from sparkdl.deid import DeidOptions
from sparkdl.errors import ConfigError
from sparkdl.lidc.labels import NoduleRules
from sparkdl.patches.extract import PatchOptions
from sparkdl.units.archives import Limits


@dataclass(frozen=True)
class CandidateGeneration(CandidateOptions):
    """``candidates:``: whether ingest finds nodule candidates in every volume, and how.

    ``generate``: ``auto`` (when no ``--candidates`` file is given), ``always`` or ``never``;
    the other keys are :class:`~sparkdl.candidates.CandidateOptions`. Generated candidates are
    ``OUT/candidates/`` and become patches (``source`` ``generated``) labelled by the nodules
    they hit, as listed candidates are.
    """

    generate: Literal["auto", "always", "never"] = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.generate not in ("auto", "always", "never"):
            raise ConfigError(
                "candidates.generate must be auto, always or never. "
                f"Received: generate={self.generate!r}"
            )

    def wanted(self, candidates_file: str | None) -> bool:
        """Whether this run generates: ``always``, or ``auto`` without a candidates file."""
        return self.generate == "always" or (self.generate == "auto" and candidates_file is None)


@dataclass(frozen=True)
class IngestConfig:
    """``conf/ingest.yaml``: one section per stage."""

    deid: DeidOptions = field(default_factory=DeidOptions)
    limits: Limits = field(default_factory=Limits)
    volumes: VolumeOptions = field(default_factory=VolumeOptions)
    patches: PatchOptions = field(default_factory=PatchOptions)
    #: Which nodules of LIDC-IDRI read messages (XML among the inputs) are positives.
    lidc: NoduleRules = field(default_factory=NoduleRules)
    #: Nodule candidates found in every volume (scans that come without a list).
    candidates: CandidateGeneration = field(default_factory=CandidateGeneration)
    #: Bytes of input per Spark task when the inputs are large.
    partition_target_mb: int = 128
    #: Series assembled by tasks that read their staged slices themselves
    #: (:mod:`sparkdl.ingestion.local_assembly`); false: all through a Spark shuffle.
    local_assembly: bool = True
    #: Also write every accepted instance as a de-identified DICOM file under ``OUT/dicom/``.
    export_dicom: bool = False

    def __post_init__(self) -> None:
        if self.partition_target_mb <= 0:
            raise ConfigError(
                f"partition_target_mb must be > 0. Received: {self.partition_target_mb}"
            )

    @classmethod
    def load(cls, path: str | Path | None = None) -> IngestConfig:
        return from_mapping(cls, read_yaml(path), where=str(path or "ingest config"))
