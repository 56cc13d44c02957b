"""LIDC read messages: the content sniff, safe parsing (hostile XML refused with a reason),
the schema's quirks, and the real 071.xml of LIDC-IDRI-0002 counted independently."""

from __future__ import annotations

import re

import pytest

from sparkdl.errors import InputError, SparkdlError
from sparkdl.lidc import (
    NoduleRead,
    ReadMessageError,
    SmallNoduleRead,
    is_read_message,
    parse_read_message,
)
from tests.lidc_data import BILLION_LAUGHS, XXE, message, real_xml

ROI = """<roi><imageZposition>-100.750000 </imageZposition>
<imageSOP_UID> 1.2.3.1 </imageSOP_UID><inclusion>TRUE</inclusion>
<edgeMap><xCoord>10</xCoord><yCoord> 20 </yCoord></edgeMap>
<edgeMap><xCoord>14</xCoord><yCoord>20</yCoord></edgeMap>
<edgeMap><xCoord>12</xCoord><yCoord>24</yCoord></edgeMap></roi>"""
POINT = """<roi><imageZposition>-55.75</imageZposition><imageSOP_UID>1.2.3.2</imageSOP_UID>
<inclusion>TRUE</inclusion><edgeMap><xCoord>197</xCoord><yCoord>325</yCoord></edgeMap></roi>"""


# --- sniff -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        message(""),
        b"\xef\xbb\xbf" + message(""),
        b'<?xml version="1.0"?>\n<!-- exported -->\n<?pi x?>\n<LidcReadMessage '
        b'uid="1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://www.nih.gov">',
        b"<n:LidcReadMessage xmlns:n='http://www.nih.gov'><n:ResponseHeader/>",
        '<?xml version="1.0" encoding="UTF-16"?><LidcReadMessage xmlns="http://www.nih.gov"/>'.encode(
            "utf-16"
        ),
    ],
)
def test_read_messages_sniff_true(data: bytes) -> None:
    assert is_read_message(data)


@pytest.mark.parametrize(
    "data",
    [
        b"<root/>",
        b'<?xml version="1.0"?><root xmlns="http://www.nih.gov"><LidcReadMessage/></root>',
        b"<LidcReadMessage><ResponseHeader/></LidcReadMessage>",  # no namespace
        b'<LidcReadMessage xmlns="http://www.nih.gov/other"/>',
        b'<n:LidcReadMessage xmlns="http://www.nih.gov" xmlns:n="urn:x"/>',
        b"<IdriReadMessage xmlns='http://www.nih.gov'/>",
        b"DICM\x00\x01not xml at all",
        b"",
        b"<!-- a comment that never ends",
    ],
)
def test_other_content_sniffs_false(data: bytes) -> None:
    assert not is_read_message(data)


# --- hostile and broken input ----------------------------------------------------------------

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE LidcReadMessage SYSTEM "http://127.0.0.1:9/lidc.dtd">
<LidcReadMessage xmlns="http://www.nih.gov"><ResponseHeader/></LidcReadMessage>"""


PLAIN_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE LidcReadMessage [<!ELEMENT LidcReadMessage ANY>]>
<LidcReadMessage xmlns="http://www.nih.gov"><ResponseHeader/></LidcReadMessage>"""


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (BILLION_LAUGHS, "xml_entities_forbidden"),
        (XXE, "xml_entities_forbidden"),
        (EXTERNAL_DTD, "xml_external_forbidden"),
        (PLAIN_DTD, "xml_dtd_forbidden"),
    ],
    ids=["laughs", "xxe", "external-dtd", "dtd"],
)
def test_hostile_xml_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    assert is_read_message(data)  # it looks like one: the parser, not the sniff, refuses it
    with pytest.raises(ReadMessageError) as caught:
        parse_read_message(data)
    assert caught.value.reason == reason
    assert "passwd" not in str(caught.value) and "lol" not in str(caught.value)
    assert isinstance(caught.value, InputError) and isinstance(caught.value, SparkdlError)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (message(f"<readingSession>{ROI}</readingSession>")[:-40], "xml_malformed"),
        (b"<LidcReadMessage xmlns='http://www.nih.gov'><a></b></LidcReadMessage>", "xml_malformed"),
        (b"", "xml_malformed"),
        (b"<root/>", "not_lidc_xml"),
        (b"<LidcReadMessage><ResponseHeader/></LidcReadMessage>", "not_lidc_xml"),
        (message("", header="<CtImageFile>removed</CtImageFile>"), "series_uid_missing"),
    ],
)
def test_broken_or_foreign_xml_raises_its_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ReadMessageError) as caught:
        parse_read_message(data)
    assert caught.value.reason == reason
    assert reason in str(caught.value)


# --- the schema and its quirks --------------------------------------------------------------


def test_reads_are_classified_and_numbers_tolerate_whitespace() -> None:
    data = message(
        "<readingSession><annotationVersion>3.12</annotationVersion>"
        "<servicingRadiologistID>-360930790</servicingRadiologistID>"
        f"<unblindedReadNodule><noduleID>Nodule 001</noduleID>{POINT}</unblindedReadNodule>"
        "<unblindedReadNodule><noduleID>big</noduleID><characteristics>"
        "<subtlety>5</subtlety><malignancy> 4 </malignancy><texture></texture></characteristics>"
        f"{ROI}{ROI.replace('TRUE', 'FALSE')}</unblindedReadNodule>"
        f"<unblindedReadNodule><noduleID>uncharacterised</noduleID>{ROI}</unblindedReadNodule>"
        "<nonNodule><nonNoduleID>n1</nonNoduleID><imageZposition>-1.5 </imageZposition>"
        "<imageSOP_UID>1.2.3.3</imageSOP_UID><locus><xCoord>347</xCoord><yCoord>362</yCoord>"
        "</locus></nonNodule></readingSession>"
        "<readingSession><servicingRadiologistID>7</servicingRadiologistID></readingSession>",
        header="<CtImageFile>removed</CtImageFile><SeriesInstanceUid> 1.2.3 </SeriesInstanceUid>"
        "<StudyInstanceUID>1.2</StudyInstanceUID>",
    )
    read = parse_read_message(data)
    assert (read.series_uid, read.study_uid) == ("1.2.3", "1.2")
    first, empty = read.sessions
    assert first.reader_id == "-360930790"
    assert (empty.nodules, empty.small_nodules, empty.non_nodules) == ((), (), ())
    assert first.small_nodules == (SmallNoduleRead("Nodule 001", "1.2.3.2", -55.75, (197, 325)),)
    big, uncharacterised = first.nodules
    assert big.characteristics == {"subtlety": 5, "malignancy": 4}
    assert [(roi.sop_uid, roi.z_position, roi.inclusion) for roi in big.rois] == [
        ("1.2.3.1", -100.75, True),
        ("1.2.3.1", -100.75, False),
    ]
    assert big.rois[0].xy.tolist() == [[10, 20], [14, 20], [12, 24]]
    assert uncharacterised.characteristics == {} and len(uncharacterised.rois) == 1
    (non_nodule,) = first.non_nodules
    assert (non_nodule.sop_uid, non_nodule.z_position, non_nodule.xy) == (
        "1.2.3.3",
        -1.5,
        (347, 362),
    )
    assert first.unusable == ()


@pytest.mark.parametrize(
    ("roi", "reason"),
    [
        (ROI.replace("<imageSOP_UID> 1.2.3.1 </imageSOP_UID>", ""), "roi_sop_uid_missing"),
        (ROI.replace("<xCoord>14</xCoord>", "<xCoord>14.5</xCoord>"), "roi_coordinate_invalid"),
        (ROI.replace("<yCoord>24</yCoord>", "<yCoord/>"), "roi_coordinate_invalid"),
        (ROI.replace("<yCoord>24</yCoord>", "<yCoord>-1</yCoord>"), "roi_coordinate_invalid"),
        (ROI.replace("<xCoord>10</xCoord>", "<xCoord>1e9</xCoord>"), "roi_coordinate_invalid"),
        (re.sub(r"<edgeMap>.*?</edgeMap>", "", ROI, flags=re.DOTALL), "roi_edge_map_empty"),
        ("", "nodule_without_roi"),
    ],
)
def test_unusable_marks_are_listed_with_a_reason(roi: str, reason: str) -> None:
    data = message(
        f"<readingSession><unblindedReadNodule><noduleID>bad</noduleID>{roi}</unblindedReadNodule>"
        f"<unblindedReadNodule><noduleID>good</noduleID>{ROI}</unblindedReadNodule>"
        "<nonNodule><nonNoduleID>nn</nonNoduleID><imageSOP_UID>1.2</imageSOP_UID>"
        "<locus><xCoord>3</xCoord></locus></nonNodule></readingSession>"
    )
    (session,) = parse_read_message(data).sessions
    assert [n.nodule_id for n in session.nodules] == ["good"]
    assert [(u.reader, u.kind, u.mark_id, u.reason) for u in session.unusable] == [
        (0, "nodule", "bad", reason),
        (0, "non_nodule", "nn", "locus_invalid"),
    ]


# --- the real read message ------------------------------------------------------------------


def test_real_read_message_matches_an_independent_count() -> None:
    path = real_xml()
    data = path.read_bytes()
    assert is_read_message(data)
    read = parse_read_message(data)
    assert read.series_uid == path.parent.name
    assert read.study_uid == path.parent.parent.name
    # Independent count: split the text at the sessions, count the elements with regexes.
    texts = re.findall(r"<readingSession>(.*?)</readingSession>", data.decode(), re.DOTALL)
    assert len(read.sessions) == len(texts) == 4
    for session, text in zip(read.sessions, texts):
        reads = re.findall(r"<unblindedReadNodule>(.*?)</unblindedReadNodule>", text, re.DOTALL)
        characterised = [r for r in reads if "<characteristics>" in r]
        points = [r for r in reads if r.count("<edgeMap>") == 1 and "<characteristics>" not in r]
        assert len(session.nodules) + len(session.small_nodules) == len(reads)
        assert len(session.small_nodules) == len(points)
        assert [n.nodule_id for n in session.nodules] == [
            re.search(r"<noduleID>(.*?)</noduleID>", r).group(1)  # type: ignore[union-attr]
            for r in characterised
        ]
        assert len(session.non_nodules) == text.count("<nonNodule>")
        assert session.unusable == ()
        for nodule in session.nodules:
            assert isinstance(nodule, NoduleRead)
            assert set(nodule.characteristics) >= {"malignancy", "texture"}
    assert [len(s.nodules) for s in read.sessions] == [0, 0, 1, 1]
    num_rois = sum(len(n.rois) for s in read.sessions for n in s.nodules)
    num_points = sum(len(s.small_nodules) for s in read.sessions)
    assert num_rois + num_points == data.count(b"<roi>")


def test_rois_compare_by_value_and_are_read_only() -> None:
    data = message(
        f"<readingSession><unblindedReadNodule>{ROI}</unblindedReadNodule></readingSession>"
    )
    (first,) = parse_read_message(data).sessions[0].nodules
    (second,) = parse_read_message(data).sessions[0].nodules
    assert first == second and first.rois[0] is not second.rois[0]
    with pytest.raises(ValueError, match="read-only"):
        first.rois[0].xy[0, 0] = 1
