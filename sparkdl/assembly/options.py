"""How series become volumes: the ``volumes:`` section of ``conf/ingest.yaml``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sparkdl import config

_MODES = ("resample", "exclude")


@dataclass(frozen=True)
class VolumeOptions:
    """How series become volumes. Validates itself; :meth:`from_mapping` reads config.

    ``min_slices`` defaults to 16: fewer than any volumetric chest CT (even 10 mm slices
    over a 30 cm chest give ~30), more than the non-volumetric sets that share a series
    with one (localizers, key images, a few test slices).
    ``max_gap_slices`` defaults to 2.0: one missing slice is interpolated (with a
    warning), two or more are not.
    """

    min_slices: int = 16
    spacing_tolerance: float = 0.01
    spacing_tolerance_mm: float = 0.05
    on_uneven: Literal["resample", "exclude"] = "resample"
    on_tilt: Literal["resample", "exclude"] = "resample"
    max_gap_slices: float = 2.0
    orientation_tolerance: float = 1e-3

    def __post_init__(self) -> None:
        # Ranges only: config.from_mapping checks the types. Written so NaN fails too.
        config.check_ranges(
            self,
            [
                ("min_slices", self.min_slices >= 1, "an integer >= 1"),
                ("spacing_tolerance", 0 <= self.spacing_tolerance < 1, "a number in [0, 1)"),
                ("spacing_tolerance_mm", 0 <= self.spacing_tolerance_mm < 1, "a number in [0, 1)"),
                (
                    "orientation_tolerance",
                    0 <= self.orientation_tolerance < 1,
                    "a number in [0, 1)",
                ),
                ("max_gap_slices", 1 <= self.max_gap_slices < math.inf, "a finite number >= 1"),
                ("on_uneven", self.on_uneven in _MODES, "one of " + ", ".join(_MODES)),
                ("on_tilt", self.on_tilt in _MODES, "one of " + ", ".join(_MODES)),
            ],
        )

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any] | None, *, where: str = "volumes"
    ) -> VolumeOptions:
        """Options from a config section (e.g. the ``volumes:`` block of the YAML file)."""
        return config.from_mapping(cls, values, where=where)

    def spacing_tolerance_at(self, spacing_mm: float) -> float:
        """Allowed deviation (mm) from a nominal spacing."""
        return max(self.spacing_tolerance * spacing_mm, self.spacing_tolerance_mm)
