"""De-identification: DICOM PS3.15 Annex E Basic Profile, table-driven, keyed pseudonyms.

Typical use, once per instance on an executor::

    key = load_key(key_file)              # on the driver; ship the bytes to executors
    options = DeidOptions.from_mapping(config.get("deid", {}))
    reason = burned_in_reason(ds)         # before deidentify()
    if reason and options.reject_burned_in:
        ...                               # reject with that reason code
    result = deidentify(ds, key, options) # ds modified in place
"""

from sparkdl.deid.actions import BURNED_IN_REASONS, DeidResult, burned_in_reason, deidentify
from sparkdl.deid.keys import date_offset_days, load_key, pseudonym, remap_uid
from sparkdl.deid.options import DeidOptions

__all__ = [
    "BURNED_IN_REASONS",
    "DeidOptions",
    "DeidResult",
    "burned_in_reason",
    "date_offset_days",
    "deidentify",
    "load_key",
    "pseudonym",
    "remap_uid",
]
