"""Apply the PS3.15 Basic Application Level Confidentiality Profile to one pydicom Dataset.

:func:`deidentify` walks every element, recursively inside every sequence item and in the
file meta, and applies the action the rule table gives it (see :mod:`sparkdl.deid.rules`
for how options and combined codes resolve):

- X remove; Z zero length (a sequence becomes empty); K keep (a sequence is kept and its
  items cleaned recursively).
- D dummy value valid for the VR: ``ANONYMIZED`` for text, ``ANONYMOUS`` for PN, 0 for
  numbers, 19000101 / 000000 for dates and times, ``000Y`` for AS, two zero bytes for
  binary VRs; a UI value is remapped instead. A sequence under D is kept, and inside it
  every free-text element the table does not list (CodeValue, CodeMeaning, TextValue …)
  is replaced by a dummy too, since such items (SR content, operator and observer
  identification) are where names and ids hide.
- C clean: DA and DT are shifted by the patient's offset, TM is kept (the Retain
  Longitudinal Temporal Information with Modified Dates option); UI is remapped; CS, AS
  and numbers are kept (coded or numeric, not free text); sequences are cleaned like D.
  We have no safe cleaner for free text, so text under C gets the dummy value; binary
  values under C are removed.
- U, and U* (X/Z/U*): UI values are remapped with :func:`remap_uid`; U* keeps the
  sequence and applies the profile inside it.

Beyond the table, conservatively:

- Every UI value is remapped, wherever it is, unless it names a class or a transfer
  syntax (keywords ending in ``ClassUID`` or containing ``TransferSyntaxUID``) or is a
  well-known DICOM UID (``pydicom.uid.UID_dictionary``). Retain UIDs turns this off.
- Every DA/DT value is shifted by the patient's offset (intervals survive) unless full
  dates are retained, even when the table does not list the attribute.
- A PN element the table does not list becomes zero length.
- Private groups (with or without a private creator) are removed; so are whole overlay
  (60xx) and curve (50xx) groups, also under Clean Graphics (no cleaner for bitmaps).
- File meta AE titles and private information (0002,0016/0017/0018/0100/0102) are removed;
  group lengths outside the file meta are removed (they would be stale).
- Other public attributes the table does not list are kept, as the profile says.

PatientID and PatientName become the same keyed pseudonym of the original PatientID (of the
StudyInstanceUID when PatientID is empty). PixelData is never read or changed.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Mapping

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary

from sparkdl.deid.file_meta import rewrite_file_meta
from sparkdl.deid.keys import MIN_KEY_LENGTH, date_offset_days, pseudonym, remap_uid
from sparkdl.deid.marks import encoded_marks, mark_elements, raw_text
from sparkdl.deid.options import DeidOptions
from sparkdl.deid.rules import ActionMap, resolve_actions
from sparkdl.deid.values import (
    BINARY_VRS,
    NUMBER_SIZES,
    get_strings,
    iter_values,
    set_bytes,
    set_strings,
    shift_date,
    shift_datetime,
)
from sparkdl.errors import DeidKeyError

__all__ = ["BURNED_IN_REASONS", "DeidResult", "burned_in_reason", "deidentify"]

logger = logging.getLogger(__name__)

BURNED_IN_REASONS = ("burned_in_annotation", "dose_report", "screen_save", "secondary_capture")

_TEXT_VRS = frozenset({"AE", "LO", "LT", "SH", "ST", "UT", "UC", "UR", "PN"})
_TEXT_ORBINARY_VRS = _TEXT_VRS | BINARY_VRS
_DUMMY: Mapping[str, str] = {
    "AE": "ANONYMIZED",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "PN": "ANONYMOUS",
}
# Dummies where "ANONYMIZED" would not be a valid value: TimezoneOffsetFromUTC is &ZZXX.
_DUMMY_BY_TAG: Mapping[int, str] = {0x00080201: "+0000"}
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
# File meta elements outside Table E.1-1 that name systems or carry private data.
_EXTRA_REMOVE = frozenset({0x00020016, 0x00020017, 0x00020018, 0x00020100, 0x00020102})

_SECONDARY_CAPTURE = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",
        "1.2.840.10008.5.1.4.1.1.7.1",
        "1.2.840.10008.5.1.4.1.1.7.2",
        "1.2.840.10008.5.1.4.1.1.7.3",
        "1.2.840.10008.5.1.4.1.1.7.4",
    }
)
_DOSE_SR = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.88.67",  # X-Ray Radiation Dose SR
        "1.2.840.10008.5.1.4.1.1.88.68",  # Radiopharmaceutical Radiation Dose SR
        "1.2.840.10008.5.1.4.1.1.88.73",  # Patient Radiation Dose SR
        "1.2.840.10008.5.1.4.1.1.88.76",  # Enhanced X-Ray Radiation Dose SR
    }
)


@dataclasses.dataclass(frozen=True)
class DeidResult:
    """What the caller needs after :func:`deidentify` (all pseudonymous, no PHI).

    ``date_offset_days`` is the shift applied to every date (0 when full dates are kept);
    ``action_counts`` counts elements per action code (X, Z, D, K, C, U, U*).
    """

    patient_id: str
    study_uid: str | None
    series_uid: str | None
    sop_uid: str | None
    date_offset_days: int
    action_counts: Mapping[str, int]


@dataclasses.dataclass
class _Context:
    key: bytes = dataclasses.field(repr=False)
    actions: ActionMap
    offset: int | None  # None: dates are kept (full dates option)
    remap_uids: bool
    drop_overlays: bool
    drop_curves: bool
    counts: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    shifted: int = 0


def deidentify(ds: Dataset, key: bytes, options: DeidOptions) -> DeidResult:
    """De-identify ``ds`` in place (file meta included) and return the pseudonyms used.

    Call :func:`burned_in_reason` first (it reads attributes this removes).

    Raises:
        DeidKeyError: ``key`` is not bytes of at least 32 characters (use ``load_key``).
    """
    if not isinstance(key, bytes) or len(key) < MIN_KEY_LENGTH:
        raise DeidKeyError(
            f"deidentify() needs the key as bytes of at least {MIN_KEY_LENGTH} characters; "
            f"received {type(key).__name__}. Load it with sparkdl.deid.load_key()."
        )
    patient_key = str(ds.get("PatientID", "") or "").strip()
    if not patient_key:
        patient_key = "StudyInstanceUID=" + str(ds.get("StudyInstanceUID", "") or "").strip()
    patient_id = pseudonym(key, patient_key)
    actions = resolve_actions(options)
    ctx = _Context(
        key=key,
        actions=actions,
        offset=None if options.retain_long_full_dates else date_offset_days(key, patient_key),
        remap_uids=not options.retain_uids,
        drop_overlays=actions.action_for(0x60003000) in ("X", "C"),
        drop_curves=actions.action_for(0x50000000) in ("X", "C"),
    )
    _clean(ds, ctx, dummy_scope=False)
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        _clean(file_meta, ctx, dummy_scope=False)
        ctx.counts["X"] += rewrite_file_meta(file_meta)  # what does not describe the writer goes
    _set_ascii(ds, 0x00100020, "LO", patient_id)  # PatientID
    _set_ascii(ds, 0x00100010, "PN", patient_id)  # PatientName
    _mark(ds, options, ctx)
    result = DeidResult(
        patient_id=patient_id,
        study_uid=_first_string(ds, 0x0020000D),
        series_uid=_first_string(ds, 0x0020000E),
        sop_uid=_first_string(ds, 0x00080018),
        date_offset_days=ctx.offset if ctx.offset is not None and ctx.shifted else 0,
        action_counts=dict(sorted(ctx.counts.items())),
    )
    logger.debug("de-identified an instance of %s: %s", patient_id, result.action_counts)
    return result


def burned_in_reason(ds: Dataset) -> str | None:
    """Why ``ds`` may carry burned-in text, as a stable code, or None.

    Codes, first match wins: ``burned_in_annotation`` (BurnedInAnnotation (0028,0301) is
    YES), ``dose_report`` (a radiation dose SR, or a screen capture whose ImageType or
    SeriesDescription names a dose report or a CSA report page), ``screen_save``
    (ImageType contains SCREEN SAVE), ``secondary_capture`` (SOPClassUID is one of the
    Secondary Capture classes 1.2.840.10008.5.1.4.1.1.7[.1-.4]). Call it before
    :func:`deidentify`, which removes SeriesDescription.
    """
    if str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES":
        return "burned_in_annotation"
    sop_class = str(ds.get("SOPClassUID", "") or "").strip()
    image_type = {str(v).strip().upper() for v in iter_values(ds.get("ImageType"))}
    capture = sop_class in _SECONDARY_CAPTURE or "SCREEN SAVE" in image_type
    description = str(ds.get("SeriesDescription", "") or "").upper()
    if sop_class in _DOSE_SR or (
        capture
        and ("DOSE" in description or "DOSE INFO" in image_type or "CSA REPORT" in image_type)
    ):
        return "dose_report"
    if "SCREEN SAVE" in image_type:
        return "screen_save"
    if sop_class in _SECONDARY_CAPTURE:
        return "secondary_capture"
    return None


def _clean(ds: Dataset, ctx: _Context, *, dummy_scope: bool) -> None:
    # The element dict itself: Dataset.elements() sorts the tags and looks every element up
    # again, and `del ds[t]` normalises the tag: most of the walk's time went there.
    elements = ds._dict
    for tag, elem in list(elements.items()):
        t = int(tag)
        group = t >> 16
        action = ctx.actions.action_for(t)
        if (
            (t & 0xFFFF == 0 and group != 0x0002)  # group lengths, except the file meta's
            or t in _EXTRA_REMOVE
            or (ctx.drop_overlays and 0x6000 <= group <= 0x601E)
            or (ctx.drop_curves and 0x5000 <= group <= 0x501E)
        ):
            action = "X"
        if action == "X":
            del elements[tag]
            ctx.counts["X"] += 1
            continue
        if action is None and t in _PIXEL_TAGS:
            continue  # never decode or copy pixel data
        vr = _raw_vr(ds, elem)
        if action is None:
            action = _default_action(vr, ctx, dummy_scope)
        if action == "K" and vr != "SQ":
            ctx.counts["K"] += 1  # kept as read: no need to decode the value
            continue
        _apply(ds, tag, vr, action, ctx, dummy_scope)


def _raw_vr(ds: Dataset, elem: DataElement | RawDataElement) -> str:
    """The VR without decoding the value (implicit VR and UN fall back to the dictionary)."""
    vr = elem.VR
    if vr and vr != "UN":
        return str(vr)
    try:
        return str(dictionary_VR(elem.tag))
    except KeyError:
        return str(ds[elem.tag].VR)


def _default_action(vr: str, ctx: _Context, dummy_scope: bool) -> str:
    """The action for an attribute Table E.1-1 does not list (see the module docstring)."""
    if vr == "UI":
        return "U" if ctx.remap_uids else "K"
    if vr in ("DA", "DT"):
        return "C" if ctx.offset is not None else "K"
    if vr == "PN":
        return "Z"
    if dummy_scope and vr in _TEXT_VRS:
        return "D"
    return "K"


def _apply(  # noqa: PLR0912 - one branch per (action, VR) case of PS3.15 Table E.1-1
    ds: Dataset, tag: int, vr: str, action: str, ctx: _Context, dummy_scope: bool
) -> None:
    """``tag`` is the data set's own key (a pydicom BaseTag): looking an element up by a
    plain int costs a BaseTag.__eq__ call per lookup."""
    ctx.counts[action] += 1
    if vr == "SQ":
        elem = ds[tag]
        if action == "Z":
            elem.value = Sequence()
            return
        inner = dummy_scope or action in ("D", "C")
        for item in elem.value:
            _clean(item, ctx, dummy_scope=inner)
        return
    if action == "K" or (action == "U*" and vr != "UI"):
        return
    if action == "Z":
        if vr in BINARY_VRS or vr in NUMBER_SIZES:
            set_bytes(ds, tag, None)
        else:
            set_strings(ds, tag, vr, [])
    elif vr == "UI":
        keyword = keyword_for_tag(tag)
        set_strings(ds, tag, vr, [_remap(ctx, keyword, v) for v in get_strings(ds, tag)])
    elif action == "C" and vr in ("DA", "DT"):
        offset = ctx.offset
        values = get_strings(ds, tag) if offset is not None else []
        if offset is not None and values:
            shift = shift_date if vr == "DA" else shift_datetime
            try:
                set_strings(ds, tag, vr, [shift(v, offset) for v in values])
                ctx.shifted += 1
            except ValueError:
                set_strings(ds, tag, vr, [])  # unparseable: drop rather than keep a real date
    elif action == "C" and vr not in _TEXT_ORBINARY_VRS:
        return  # TM pairs with shifted dates; CS, AS and numbers are not free text
    elif action == "C" and vr in BINARY_VRS:
        del ds[tag]
    elif vr in BINARY_VRS:
        set_bytes(ds, tag, b"\x00\x00")
    elif vr in NUMBER_SIZES:
        set_bytes(ds, tag, bytes(NUMBER_SIZES[vr]))
    else:
        set_strings(ds, tag, vr, [_DUMMY_BY_TAG.get(int(tag)) or _DUMMY.get(vr, "ANONYMIZED")])


def _remap(ctx: _Context, keyword: str, uid: str) -> str:
    if (
        not uid
        or keyword.endswith("ClassUID")
        or "TransferSyntaxUID" in keyword
        or uid in UID_dictionary
    ):
        return uid
    return remap_uid(ctx.key, uid)


def _mark(ds: Dataset, options: DeidOptions, ctx: _Context) -> None:
    """Record what was done: PS3.3 C.7.1.1 (Patient) and C.12.1 (SOP Common).

    The elements are the same for every instance of a run but for the temporal mode, so a
    little-endian data set gets them as raw elements encoded once per (options, mode, VR
    encoding): the exporter copies them and nothing builds four item data sets per instance.
    """
    if options.retain_long_full_dates:
        mode = "UNMODIFIED"
    elif options.retain_long_modified_dates or ctx.shifted:
        mode = "MODIFIED"
    else:
        mode = "REMOVED"
    implicit, little = ds.original_encoding
    if implicit is None or not little:
        for elem in mark_elements(options, mode):
            ds[elem.tag] = elem
        return
    for raw in encoded_marks(options, mode, implicit):
        ds[raw.tag] = raw


def _set_ascii(ds: Dataset, tag: int, vr: str, text: str) -> None:
    """Set an element to an ASCII value: raw bytes in a little-endian data set (copied as
    they are by the exporter), an element otherwise."""
    implicit, little = ds.original_encoding
    if implicit is None or not little:
        ds[tag] = DataElement(tag, vr, text)
    else:
        ds[tag] = raw_text(tag, vr, [text], implicit)


def _first_string(ds: Dataset, tag: int) -> str | None:
    """An element's first value, read without converting it (so the exporter copies it)."""
    values = get_strings(ds, tag) if tag in ds else []
    return values[0] if values and values[0] else None
