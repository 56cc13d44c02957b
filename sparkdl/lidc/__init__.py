"""LIDC-IDRI readers' XML: parse a read message, place its marks in world space, cluster
the readers' marks into nodules and label them the LUNA16 way::

    message = parse_read_message(xml_bytes)
    marks, unusable = read_marks(message, slices, uid=lambda u: remap_uid(key, u))
    nodules = cluster_marks(marks)
    rows = annotation_rows(deid_series_uid, nodules, NoduleRules())
"""

from sparkdl.lidc.clustering import POINT_REACH_MM, Nodule, cluster_marks
from sparkdl.lidc.labels import (
    ANNOTATION_COLUMNS,
    NoduleRules,
    annotation_rows,
    malignancy_label,
    write_annotations_csv,
)
from sparkdl.lidc.marks import Mark, SliceGeometry, read_marks
from sparkdl.lidc.read_message import (
    CHARACTERISTICS,
    NoduleRead,
    NonNoduleMark,
    ReadingSession,
    ReadMessage,
    ReadMessageError,
    Roi,
    SmallNoduleRead,
    Unusable,
    parse_read_message,
)
from sparkdl.lidc.sniff import LIDC_NAMESPACE, is_read_message

__all__ = [
    "ANNOTATION_COLUMNS",
    "CHARACTERISTICS",
    "LIDC_NAMESPACE",
    "POINT_REACH_MM",
    "Mark",
    "Nodule",
    "NoduleRead",
    "NoduleRules",
    "NonNoduleMark",
    "ReadMessage",
    "ReadMessageError",
    "ReadingSession",
    "Roi",
    "SliceGeometry",
    "SmallNoduleRead",
    "Unusable",
    "annotation_rows",
    "cluster_marks",
    "is_read_message",
    "malignancy_label",
    "parse_read_message",
    "read_marks",
    "write_annotations_csv",
]
