"""``conf/ingest.yaml``: the ingest job's configuration, one section per stage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sparkdl.assembly.options import VolumeOptions
from sparkdl.config import from_mapping, read_yaml
from sparkdl.deid import DeidOptions
from sparkdl.errors import ConfigError
from sparkdl.lidc.labels import NoduleRules
from sparkdl.patches.extract import PatchOptions
from sparkdl.units.archives import Limits


@dataclass(frozen=True)
class IngestConfig:
    """``conf/ingest.yaml``: one section per stage."""

    deid: DeidOptions = field(default_factory=DeidOptions)
    limits: Limits = field(default_factory=Limits)
    volumes: VolumeOptions = field(default_factory=VolumeOptions)
    patches: PatchOptions = field(default_factory=PatchOptions)
    #: Which nodules of LIDC-IDRI read messages (XML among the inputs) are positives.
    lidc: NoduleRules = field(default_factory=NoduleRules)
    #: Bytes of input per Spark task when the inputs are large.
    partition_target_mb: int = 128
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
