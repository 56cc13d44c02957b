#!/usr/bin/env python
"""Generate ``sparkdl/deid/rules.json`` from DICOM PS3.15 Table E.1-1.

The input is the table as compiled into JSON by innolitics/dicom-standard
(``standard/confidentiality_profile_attributes.json``), kept in ``reference/`` (its README
names the source).
The output is the project's own copy: one rule per row, sorted by tag, with the keyword
from pydicom's data dictionary, the Basic Profile action and the action under each option,
keyed by the option names of :class:`sparkdl.deid.options.DeidOptions` (the YAML keys
under ``deid:``). The output is deterministic: rerunning on the same input gives the same
bytes, which a test checks against the committed file.

Usage::

    python scripts/gen_deid_rules.py [--reference PATH] [--output PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REFERENCE = ROOT / "reference" / "ps3.15-table-e.1-1.json"
DEFAULT_OUTPUT = ROOT / "sparkdl" / "deid" / "rules.json"

SOURCE = {
    "standard": "DICOM PS3.15 Annex E, Table E.1-1 "
    "(Application Level Confidentiality Profile Attributes)",
    "repository": "innolitics/dicom-standard",
    "path": "standard/confidentiality_profile_attributes.json",
    "commit": "7f4749d",
    "license": "MIT, Copyright (c) 2017 Innolitics, LLC",
    "generator": "scripts/gen_deid_rules.py",
}

# innolitics column -> DeidOptions field (and YAML key under `deid:`).
OPTION_COLUMNS = {
    "rtnSafePrivOpt": "retain_safe_private",
    "rtnUIDsOpt": "retain_uids",
    "rtnDevIdOpt": "retain_device_identity",
    "rtnInstIdOpt": "retain_institution_identity",
    "rtnPatCharsOpt": "retain_patient_characteristics",
    "rtnLongFullDatesOpt": "retain_long_full_dates",
    "rtnLongModifDatesOpt": "retain_long_modified_dates",
    "cleanDescOpt": "clean_descriptors",
    "cleanStructContOpt": "clean_structured_content",
    "cleanGraphOpt": "clean_graphics",
}
ACTIONS = {"X", "Z", "D", "K", "C", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"}
_TAG = re.compile(r"\(([0-9A-Fx]{4}),([0-9A-Fx]{4})\)", re.IGNORECASE)
_PRIVATE_ID = "ggggeeee-where-gggg-is-odd"


def _keyword(tag: str) -> str | None:
    """Keyword from pydicom's dictionary, for exact tags and repeating groups (50xx, 60xx)."""
    from pydicom.datadict import RepeatersDictionary, keyword_for_tag

    if "x" in tag:
        entry = RepeatersDictionary.get(tag.upper().replace("X", "x"))
        return entry[4] if entry else None
    return keyword_for_tag(int(tag, 16)) or None


def _check_action(row: dict[str, Any], column: str) -> str:
    action = str(row[column])
    if action not in ACTIONS:
        raise ValueError(
            f"Row {row.get('tag')!r} column {column!r} has action {action!r}; "
            f"expected one of {sorted(ACTIONS)}. Check the reference file."
        )
    return action


def build_rules(reference: list[dict[str, Any]], sha256: str) -> dict[str, Any]:
    """The rules document for the parsed reference rows."""
    rules: list[dict[str, Any]] = []
    private: dict[str, Any] | None = None
    for row in reference:
        options = {
            OPTION_COLUMNS[col]: _check_action(row, col)
            for col in sorted(OPTION_COLUMNS)
            if row.get(col)
        }
        entry: dict[str, Any] = {
            "basic": _check_action(row, "basicProfile"),
            "options": dict(sorted(options.items())),
        }
        if row["id"] == _PRIVATE_ID:
            private = {"name": row["name"], **entry}
            continue
        match = _TAG.fullmatch(row["tag"].strip())
        if not match:
            raise ValueError(f"Unexpected tag {row['tag']!r}; expected '(gggg,eeee)'.")
        tag = (match.group(1) + match.group(2)).upper().replace("X", "x")
        rules.append({"tag": tag, "keyword": _keyword(tag), "name": row["name"], **entry})
    if private is None:
        raise ValueError("The reference has no 'Private Attributes' row.")
    rules.sort(key=lambda r: r["tag"])
    tags = [r["tag"] for r in rules]
    if len(set(tags)) != len(tags):
        raise ValueError("The reference lists a tag twice.")
    return {
        "source": {**SOURCE, "reference_sha256": sha256},
        "options": sorted(OPTION_COLUMNS.values()),
        "private_attributes": private,
        "rules": rules,
    }


def render(doc: dict[str, Any]) -> str:
    """Compact, stable text: one rule per line, keys in a fixed order."""

    def dump(obj: Any) -> str:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))

    lines = ["{"]
    lines.append(f'"source":{dump(doc["source"])},')
    lines.append(f'"options":{dump(doc["options"])},')
    lines.append(f'"private_attributes":{dump(doc["private_attributes"])},')
    lines.append('"rules":[')
    body = [dump(rule) for rule in doc["rules"]]
    lines.append(",\n".join(body))
    lines.append("]}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reference",
        type=Path,
        default=DEFAULT_REFERENCE,
        help=f"PS3.15 Table E.1-1 as JSON (default: {DEFAULT_REFERENCE})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"where to write the rules (default: {DEFAULT_OUTPUT})",
    )
    args = parser.parse_args(argv)
    if not args.reference.is_file():
        parser.error(
            f"reference file not found: {args.reference}. Pass --reference PATH to "
            "ps3.15-table-e.1-1.json (kept in ../shared/reference/)."
        )
    raw = args.reference.read_bytes()
    doc = build_rules(json.loads(raw), hashlib.sha256(raw).hexdigest())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(doc), encoding="utf-8")
    print(f"wrote {len(doc['rules'])} rules + private attributes to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
