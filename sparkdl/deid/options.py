"""Which PS3.15 Annex E options the de-identification applies (YAML keys under ``deid:``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from sparkdl import config
from sparkdl.errors import ConfigError

__all__ = ["DeidOptions"]


@dataclasses.dataclass(frozen=True)
class DeidOptions:
    """One flag per option of the Basic Application Level Confidentiality Profile.

    The defaults are the Basic Profile with the Retain Longitudinal Temporal Information
    with Modified Dates option (dates shifted per patient, so intervals survive) and the
    Retain Patient Characteristics option (sex, age, size, weight matter for CT models).
    ``reject_burned_in`` makes the ingest reject instances that may carry burned-in text
    (see :func:`sparkdl.deid.actions.burned_in_reason`).
    """

    retain_safe_private: bool = False
    retain_uids: bool = False
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    retain_patient_characteristics: bool = True
    retain_long_full_dates: bool = False
    retain_long_modified_dates: bool = True
    clean_descriptors: bool = False
    clean_structured_content: bool = False
    clean_graphics: bool = False
    reject_burned_in: bool = True

    def __post_init__(self) -> None:
        # config.from_mapping checks types for YAML; direct construction is checked here too,
        # since a truthy non-boolean (the string "false") would silently turn an option on.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, bool):
                raise ConfigError(
                    f"deid.{field.name} must be a boolean. Received: {value!r} "
                    f"({type(value).__name__}). Expected: true or false."
                )
        if self.retain_long_full_dates and self.retain_long_modified_dates:
            raise ConfigError(
                "deid.retain_long_full_dates and deid.retain_long_modified_dates are both true; "
                "they exclude each other (keep the real dates, or shift them per patient). "
                "Set one of them to false."
            )
        if self.retain_safe_private:
            raise ConfigError(
                "deid.retain_safe_private is true, but the Retain Safe Private option is not "
                "supported yet (it needs a vetted list of safe private attributes per "
                "creator). Set deid.retain_safe_private to false: private attributes are "
                "removed."
            )

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> DeidOptions:
        """Options from the ``deid:`` section of a config file; missing keys take defaults.

        Raises:
            ConfigError: an unknown key or a value that is not a boolean.
        """
        return config.from_mapping(cls, mapping, where="deid")
