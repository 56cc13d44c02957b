"""Fake but realistic protected health information (PHI) for synthetic studies.

Every identifying string a synthetic file carries comes from one :class:`Identity`, so
:func:`phi_strings` can list them all for leak scans. Values are drawn from small built-in
word lists with a seeded generator: the same seed gives the same people. Some names carry
Latin-1 letters (written with SpecificCharacterSet ISO_IR 100), as real European archives do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

import numpy as np

_FAMILY = (
    "MÜLLER",
    "GARCÍA",
    "NGUYEN",
    "OKONKWO",
    "JOHANSSON",
    "KOWALSKI",
    "THOMPSON",
    "FERREIRA",
    "DUBOIS",
    "HASHEMI",
    "O'BRIEN",
    "LINDQVIST",
    "MORETTI",
    "PETROV",
    "ABERNATHY",
    "YAMAMOTO",
    "FITZGERALD",
    "HALVORSEN",
    "BRENNAN",
    "CASTELLANOS",
)
_GIVEN = (
    "ANNA",
    "JOSÉ",
    "MARGARET",
    "OLUWASEUN",
    "HENRIK",
    "ZOFIA",
    "DOROTHY",
    "TIAGO",
    "CÉLINE",
    "DARIUS",
    "FIONA",
    "INGRID",
    "LORENZO",
    "ALEKSANDR",
    "WINIFRED",
    "KENJI",
    "SEAMUS",
    "SOLVEIG",
    "PATRICK",
    "MARISOL",
)
_STREETS = (
    "MAPLE AVENUE",
    "OAK STREET",
    "HIGHLAND ROAD",
    "KINGS LANE",
    "RIVERSIDE DRIVE",
    "ELM COURT",
    "STATION ROAD",
    "BIRCH BOULEVARD",
    "MILL STREET",
    "CEDAR WAY",
)
_CITIES = (
    ("SPRINGFIELD", "IL", "627"),
    ("RIVERTON", "WY", "825"),
    ("FAIRVIEW", "OR", "970"),
    ("GREENVILLE", "SC", "296"),
    ("MADISON", "WI", "537"),
    ("CLINTON", "IA", "527"),
)
_HOSPITALS = (
    "ST. BRIGID MEMORIAL HOSPITAL",
    "MERCY VALLEY MEDICAL CENTER",
    "NORTHGATE GENERAL HOSPITAL",
    "LAKESHORE UNIVERSITY CLINIC",
    "HOLY CROSS REGIONAL HOSPITAL",
)
_PROCEDURES = (
    "CT CHEST LOW DOSE SCREENING",
    "CT CHEST WITHOUT CONTRAST",
    "CT THORAX NODULE FOLLOW-UP",
    "CT CHEST HIGH RESOLUTION",
)


@dataclass(frozen=True)
class Identity:
    """One patient's study: who, where, when, and by whom (all fake)."""

    patient_name: str
    patient_id: str
    other_patient_id: str
    issuer_of_patient_id: str
    issuer_universal_id: str
    patient_birth_date: str
    patient_address: str
    patient_telephone: str
    institution_name: str
    institution_address: str
    institution_department: str
    referring_physician: str
    referring_physician_id: str
    performing_physician: str
    operator: str
    verifying_observer: str
    accession_number: str
    study_id: str
    study_description: str
    requested_procedure_id: str
    scheduled_step_id: str
    requested_procedure_description: str
    station_name: str
    device_serial_number: str
    ae_title: str
    private_name_value: str
    private_mrn_value: str
    orphan_private_value: str
    report_text: str
    report_addendum: str
    study_date: str
    patient_sex: str
    patient_age: str
    procedure_title: str


def _person(rng: np.random.Generator) -> tuple[str, str]:
    return str(rng.choice(_FAMILY)), str(rng.choice(_GIVEN))


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(str(d) for d in rng.integers(0, 10, size=n))


def make_identity(rng: np.random.Generator) -> Identity:
    """Draw one fake patient, institution and staff."""
    family, given = _person(rng)
    middle = chr(ord("A") + int(rng.integers(26)))
    study = dt.date(2014, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3650)))
    age = int(rng.integers(45, 85))
    birth = study - dt.timedelta(days=365 * age + int(rng.integers(0, 365)))
    city, state, zip3 = _CITIES[int(rng.integers(len(_CITIES)))]
    hospital_index = int(rng.integers(len(_HOSPITALS)))
    hospital = _HOSPITALS[hospital_index]
    ref_family, ref_given = _person(rng)
    perf_family, perf_given = _person(rng)
    op_family, op_given = _person(rng)
    ver_family, ver_given = _person(rng)
    mrn = _digits(rng, 8)
    procedure = str(rng.choice(_PROCEDURES))
    short = "".join(w[0] for w in hospital.replace(".", "").split()[:3])
    return Identity(
        patient_name=f"{family}^{given}^{middle}",
        patient_id=mrn,
        other_patient_id=f"{short}{_digits(rng, 6)}",
        issuer_of_patient_id=f"{short} MRN",
        issuer_universal_id=f"{short.lower()}.hospital.example",
        patient_birth_date=birth.strftime("%Y%m%d"),
        patient_address=(
            f"{int(rng.integers(1, 9999))} {rng.choice(_STREETS)}, {city}, "
            f"{state} {zip3}{_digits(rng, 2)}"
        ),
        patient_telephone=f"({zip3}) 555-{_digits(rng, 4)}",
        institution_name=hospital,
        institution_address=f"{int(rng.integers(1, 999))} {rng.choice(_STREETS)}, {city}, {state}",
        institution_department=f"RADIOLOGY {short} WING {int(rng.integers(1, 9))}",
        referring_physician=f"{ref_family}^{ref_given}^^DR",
        referring_physician_id=f"NPI{_digits(rng, 10)}",
        performing_physician=f"{perf_family}^{perf_given}",
        operator=f"{op_family}^{op_given}",
        verifying_observer=f"{ver_family}^{ver_given}^^DR",
        accession_number=f"{short}{study.strftime('%y%m')}{_digits(rng, 5)}",
        study_id=f"CT{_digits(rng, 6)}",
        study_description=f"{procedure} REF DR {ref_family}",
        requested_procedure_id=f"RP{_digits(rng, 7)}",
        scheduled_step_id=f"SPS{_digits(rng, 7)}",
        requested_procedure_description=f"{procedure} FOR {given} {family}",
        station_name=f"{short}CT{int(rng.integers(1, 9))}",
        device_serial_number=f"SN{_digits(rng, 6)}",
        ae_title=f"{short}_CT_{_digits(rng, 3)}",
        private_name_value=f"{given} {family} DOB {birth.strftime('%d.%m.%Y')}",
        private_mrn_value=f"MRN:{mrn}",
        orphan_private_value=f"TECH {op_given} {op_family} EXT {_digits(rng, 4)}",
        report_text=(
            f"Patient {given} {family} (MRN {mrn}) was referred by Dr {ref_family} "
            f"for {procedure.lower()}."
        ),
        report_addendum=f"Results phoned to Dr {ref_family} at ({zip3}) 555-{_digits(rng, 4)}.",
        study_date=study.strftime("%Y%m%d"),
        patient_sex=str(rng.choice(["F", "M"])),
        patient_age=f"{age:03d}Y",
        procedure_title=procedure,
    )


# Fields that are not PHI on their own: sex, age (kept by some de-identification options) and
# the generic procedure title.
_NOT_PHI = {"patient_sex", "patient_age", "procedure_title"}
# Fields written only into the structured report.
_REPORT_ONLY = {"report_text", "report_addendum", "verifying_observer"}


def phi_strings(identity: Identity, *, with_report: bool) -> list[str]:
    """Every identifying string of ``identity`` exactly as written into the headers
    (``with_report``: the study also holds the structured report)."""
    skip = _NOT_PHI if with_report else _NOT_PHI | _REPORT_ONLY
    return [getattr(identity, f.name) for f in fields(identity) if f.name not in skip]
