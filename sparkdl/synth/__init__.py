"""Synthetic chest-CT cohorts: DICOM with nodules, fake PHI and LUNA16-style labels.

``synthesize_cohort`` backs ``sparkdl synth``; the records it returns tell tests what was
written where (series variants, nodule ground truth).
"""

from sparkdl.synth.cohort import (
    CohortSummary,
    NoduleRecord,
    SeriesRecord,
    synthesize_cohort,
    synthesize_volume_cohort,
)
from sparkdl.synth.labels import ANNOTATION_COLUMNS, CANDIDATE_COLUMNS
from sparkdl.synth.variants import VARIANTS

__all__ = [
    "ANNOTATION_COLUMNS",
    "CANDIDATE_COLUMNS",
    "VARIANTS",
    "CohortSummary",
    "NoduleRecord",
    "SeriesRecord",
    "synthesize_cohort",
    "synthesize_volume_cohort",
]
