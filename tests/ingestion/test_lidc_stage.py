"""LIDC-IDRI as TCIA ships it, through ``sparkdl ingest``: DICOM and the readers' XML together.

The real series of ``../shared/data/lidc-idri`` (GE LightSpeed16, four reading sessions) is
ingested with its ``071.xml`` and, beside it, hostile, truncated and foreign XML (loose and in
a zip). The read message becomes a unit of its own kind, its marks meet the de-identified
slices, the clustered nodules land in ``nodules/`` and the positive one is cut as a patch
with its malignancy label; no original UID or reader id reaches an output outside
``_restricted/``.
"""

from __future__ import annotations

import json
import math
import shutil
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from sparkdl import read_rows
from sparkdl.lidc import parse_read_message
from sparkdl.lidc.pseudonymous import from_json, pseudonymize, to_json
from tests.helpers import TEST_KEY, run_sparkdl
from tests.lidc_data import BILLION_LAUGHS, LIDC, XXE, real_xml

ORIGINAL_UID_ROOT = "1.3.6.1.4.1.14519.5.2.1.6279"
needs_lidc = pytest.mark.skipif(
    not LIDC.is_dir(), reason=f"the real LIDC-IDRI series is not at {LIDC} (see its README)"
)


@needs_lidc
def test_pseudonymized_message_round_trips_without_identifiers() -> None:
    data = real_xml().read_bytes()
    message = pseudonymize(parse_read_message(data), lambda uid: "2.25." + str(len(uid)))
    text = to_json(message)
    assert from_json(text) == message
    assert ORIGINAL_UID_ROOT not in text
    assert "-360930790" in data.decode() and "-360930790" not in text  # a reader's id


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not LIDC.is_dir():
        pytest.skip(f"the real LIDC-IDRI series is not at {LIDC} (see its README)")
    root = tmp_path_factory.mktemp("lidc")
    inputs = root / "in"
    shutil.copytree(LIDC / "LIDC-IDRI-0002", inputs / "LIDC-IDRI-0002")  # as TCIA ships it
    xml = real_xml().read_bytes()
    (inputs / "billion_laughs.xml").write_bytes(BILLION_LAUGHS)
    (inputs / "truncated.xml").write_bytes(xml[: len(xml) // 2])
    (inputs / "other.xml").write_bytes(b'<?xml version="1.0"?><config><a>1</a></config>')
    with zipfile.ZipFile(inputs / "upload.zip", "w") as archive:
        archive.writestr("reads/xxe.xml", XXE)
    (root / "ingest.yaml").write_text("lidc:\n  min_readers: 2\n  hard_negatives: true\n")
    done = run_sparkdl("ingest", str(inputs), "--output", str(root / "out"),
                       "--config", str(root / "ingest.yaml"), "--master", "local[2]")  # fmt: skip
    (root / "console.txt").write_text(done.stdout + done.stderr)
    return root


def _table(path: Path) -> pa.Table:
    return pads.dataset(str(path), format="parquet").to_table()


@needs_lidc
@pytest.mark.slow
def test_read_message_is_a_unit_of_its_own_kind_and_bad_xml_gets_reasons(ingested: Path) -> None:
    manifest = json.loads((ingested / "out" / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["read_messages"] == 1
    assert counts["units"] == counts["cataloged"] + counts["rejected"] + counts["read_messages"]
    assert manifest["rejected_by_reason"] == {
        "xml_entities_forbidden": 2,  # billion laughs (loose) and XXE (zip member)
        "xml_malformed": 1,  # the truncated copy of the real message
        "not_dicom": 1,  # XML that is not a read message
    }
    rejected = _table(ingested / "out" / "_restricted" / "rejected").to_pylist()
    assert {r["member"] for r in rejected if r["reason"] == "xml_entities_forbidden"} == {
        None,
        "reads/xxe.xml",
    }


@needs_lidc
@pytest.mark.slow
def test_nodules_of_the_real_series(ingested: Path) -> None:
    nodules = _table(ingested / "out" / "nodules").to_pylist()
    reads = _table(ingested / "out" / "reads").to_pylist()
    assert len(reads) == 1 and reads[0]["num_readers"] == 4 and reads[0]["num_marks"] == 53
    assert json.loads(reads[0]["unplaced"]) == []  # every mark met its slice
    assert len(nodules) == reads[0]["num_nodules"] == 25
    assert all(1 <= n["num_readers"] <= 4 for n in nodules)
    (positive,) = [n for n in nodules if n["positive"]]  # 2 readers outlined it (min_readers 2)
    assert positive["num_nodule_readers"] == 2 and positive["malignancy_median"] == 4.5
    assert positive["malignancy"] == 1 and 20 < positive["diameter_mm"] < 27
    catalog = _table(ingested / "out" / "catalog")
    assert {n["series_uid"] for n in nodules} == set(catalog["series_uid"].to_pylist())
    patches = list(
        read_rows(str(ingested / "out" / "patches"), ["label", "malignancy", "source", "center"])
    )
    assert {p["source"] for p in patches} <= {"annotation", "generated", "candidate"}
    # One positive for the one nodule: the generated candidate on it (candidates are generated:
    # no list was given), or the nodule's own centre when no candidate reached it.
    positives = [p for p in patches if p["label"] == 1]
    assert [(p["malignancy"], p["source"]) for p in positives] in (
        [(1, "generated")],
        [(1, "annotation")],
    )
    found = _table(ingested / "out" / "candidates").to_pylist()
    assert 0 < len(found) <= 300
    # candidates/ marks every hit by LUNA16's rule (within the nodule's radius), so two candidates
    # on the one 23 mm nodule are both hits; a hit anywhere else would be a mislabelled candidate.
    centre = (positive["coordX"], positive["coordY"], positive["coordZ"])
    hits = [c for c in found if c["label"] == 1]
    assert all(
        math.dist((c["coordX"], c["coordY"], c["coordZ"]), centre) <= positive["diameter_mm"] / 2
        for c in hits
    )
    # hard_negatives: every cluster no reader outlined is a negative patch at its centre
    unoutlined = sorted(
        (round(n["coordX"], 1), round(n["coordY"], 1), round(n["coordZ"], 1))
        for n in nodules
        if n["num_nodule_readers"] == 0
    )
    hard = sorted(
        tuple(round(float(v), 1) for v in p["center"])
        for p in patches
        if p["source"] == "candidate"
    )
    assert len(unoutlined) == 24 and hard == unoutlined
    assert all(p["label"] == 0 for p in patches if p["source"] == "candidate")


@needs_lidc
@pytest.mark.slow
def test_no_original_uid_or_reader_id_outside_restricted(ingested: Path) -> None:
    out = ingested / "out"
    texts = [(out / "manifest.json").read_text(), (ingested / "console.txt").read_text()]
    for table in ("catalog", "reads", "nodules", "patches", "volumes"):
        data = _table(out / table)
        for column in data.column_names:
            if pa.types.is_string(data.schema.field(column).type):
                texts.extend(str(v) for v in data[column].to_pylist())
    for text in texts:
        assert ORIGINAL_UID_ROOT not in text
        assert "-360930790" not in text


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``sparkdl synth --lidc-xml`` (no CSV given to ingest): the readers' XML is the only label.

    One read message is there twice (the same file under another name): the copy is rejected.
    """
    root = tmp_path_factory.mktemp("lidc_synth")
    sparkdl = run_sparkdl
    sparkdl("synth", str(root / "cohort"), "--patients", "4", "--seed", "2", "--image-size", "64",
            "--lidc-xml")  # fmt: skip
    dicom = root / "cohort" / "dicom"
    first = next(p for p in sorted(dicom.rglob("*")) if p.is_file() and _is_read_message(p))
    (dicom / "copies").mkdir()
    shutil.copy(first, dicom / "copies" / "again.xml")
    (root / "ingest.yaml").write_text("lidc:\n  min_readers: 2\n")
    sparkdl("ingest", str(dicom), "--output", str(root / "out"), "--config",
            str(root / "ingest.yaml"), "--master", "local[2]", "--quiet")  # fmt: skip
    return root / "cohort", root / "out"


def _is_read_message(path: Path) -> bool:
    return b"LidcReadMessage" in path.read_bytes()[:4096]


@pytest.mark.slow
def test_synthetic_readers_find_the_known_nodules_with_their_malignancy(
    synthetic: tuple[Path, Path],
) -> None:
    import csv

    from sparkdl.deid import remap_uid

    cohort, out = synthetic
    truth = list(csv.DictReader((cohort / "annotations.csv").open()))
    nodules = _table(out / "nodules").to_pylist()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["read_messages"] == len({t["seriesuid"] for t in truth})
    assert manifest["rejected_by_reason"]["duplicate_read_message"] == 1
    matched = 0
    for known in truth:
        series = remap_uid(TEST_KEY.encode(), known["seriesuid"])
        centre = [float(known[c]) for c in ("coordX", "coordY", "coordZ")]
        near = [
            n for n in nodules
            if n["series_uid"] == series
            and sum((n[c] - v) ** 2 for c, v in zip(("coordX", "coordY", "coordZ"), centre))
            ** 0.5 < 1.5
        ]  # fmt: skip
        assert len(near) == 1, known
        nodule = near[0]
        assert 2 <= nodule["num_readers"] <= 4
        if nodule["diameter_mm"] is not None:
            assert abs(nodule["diameter_mm"] / float(known["diameter_mm"]) - 1) < 0.15
            assert nodule["positive"] and nodule["malignancy"] == int(known["malignancy"])
            matched += 1
    assert matched >= len(truth) - 2  # all but nodules under 3 mm (points, not outlined)
    patches = _table(out / "patches").select(["label", "malignancy"]).to_pylist()
    assert {p["malignancy"] for p in patches if p["label"] == 1} == {0, 1}


@pytest.mark.slow
def test_nodules_export_as_a_luna16_annotations_csv(
    synthetic: tuple[Path, Path], tmp_path: Path
) -> None:
    import csv

    from sparkdl.lidc import ANNOTATION_COLUMNS

    _, out = synthetic
    target = tmp_path / "annotations.csv"
    # No key: the CSV is made of the dataset's pseudonymous ids.
    run_sparkdl("annotations", "--data", str(out), "--output", str(target),
                env={"SPARKDL_DEID_KEY": None})  # fmt: skip
    rows = list(csv.DictReader(target.open()))
    positives = [n for n in _table(out / "nodules").to_pylist() if n["positive"]]
    assert tuple(rows[0]) == ANNOTATION_COLUMNS and len(rows) == len(positives) > 0
    assert {r["seriesuid"] for r in rows} <= {n["series_uid"] for n in positives}
    assert {r["malignancy"] for r in rows} == {"0", "1"}


@pytest.mark.slow
def test_the_positional_spelling_of_annotations_still_works(
    synthetic: tuple[Path, Path], tmp_path: Path
) -> None:
    """``sparkdl annotations OUT CSV``, as before ``--data`` and ``--output``: the same CSV,
    and one line each on stderr saying the new spelling."""
    _, out = synthetic
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    done = run_sparkdl("annotations", str(out), str(old))
    run_sparkdl("annotations", "--data", str(out), "--output", str(new))
    assert old.read_bytes() == new.read_bytes()
    printed = done.stderr.splitlines()
    assert "sparkdl annotations: the positional OUT is deprecated; use --data OUT" in printed
    assert "sparkdl annotations: the positional CSV is deprecated; use --output CSV" in printed


@pytest.mark.slow
def test_read_messages_in_a_later_append_run_label_the_earlier_series(tmp_path: Path) -> None:
    """Images first, the readers' XML a day later: the append run cuts the nodules' patches."""

    def sparkdl(*args: str) -> None:
        run_sparkdl(*args, "--quiet")

    cohort, landing, out = tmp_path / "cohort", tmp_path / "landing", tmp_path / "out"
    sparkdl("synth", str(cohort), "--patients", "2", "--seed", "4", "--image-size", "64",
            "--lidc-xml")  # fmt: skip
    reads = [p for p in (cohort / "dicom").rglob("*") if p.is_file() and b"LidcReadMessage"
             in p.read_bytes()[:4096]]  # fmt: skip
    (landing / "day2").mkdir(parents=True)
    for i, path in enumerate(reads):
        path.rename(landing / "day2" / f"read_{i}.xml")
    shutil.move(str(cohort / "dicom"), str(landing / "day1"))
    sparkdl("ingest", str(landing / "day1"), "--output", str(out), "--master", "local[2]")
    assert not (out / "nodules").exists()
    # No label source yet: the generated candidates are patches of unknown label.
    day1 = list(read_rows(str(out / "patches"), ["label", "source"]))
    assert day1 and {(p["label"], p["source"]) for p in day1} == {(-1, "generated")}
    sparkdl("ingest", str(landing / "day1"), str(landing / "day2"), "--output", str(out),
            "--mode", "append", "--master", "local[2]")  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["read_messages"] == len(reads) > 0
    assert manifest["last_run"]["rebuilt_series"] == len(reads)
    positives = [n for n in _table(out / "nodules").to_pylist() if n["positive"]]
    patches = list(read_rows(str(out / "patches"), ["label", "source", "series_uid"]))
    labelled = {p["series_uid"] for p in patches if p["label"] == 1}
    assert positives and {n["series_uid"] for n in positives} == labelled
    # The read messages labelled every series: no candidate is of unknown label any more.
    assert all(p["label"] in (0, 1) for p in patches)


def test_annotations_of_a_dataset_without_read_messages_say_why(tmp_path: Path) -> None:
    from sparkdl.errors import InputError
    from sparkdl.ingestion.lidc_stage import write_annotations

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "manifest.json").write_text(json.dumps({"counts": {}}))
    with pytest.raises(InputError, match="none of its inputs was an LIDC read message"):
        write_annotations(str(tmp_path / "out"), str(tmp_path / "a.csv"))
    assert not (tmp_path / "a.csv").exists()
