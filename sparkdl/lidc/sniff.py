"""Is this file an LIDC read message? Decided from its first 8 KB, without parsing it.

The ingest's parse step asks this of every unit that starts like XML, before DICOM: a
read message is a unit of its own kind (:mod:`sparkdl.lidc.read_message` parses it).
"""

from __future__ import annotations

import re

LIDC_NAMESPACE = "http://www.nih.gov"
ROOT_ELEMENT = "LidcReadMessage"
#: Bytes looked at (twice as many for UTF-16).
_SNIFF_BYTES = 8192

_PROLOG = re.compile(r"\s*(?:<\?.*?\?>|<!--.*?-->)", re.DOTALL)
_DOCTYPE = re.compile(r"\s*<!DOCTYPE(?:[^\[>]*\[.*?\]\s*>|[^>]*>)", re.DOTALL)
_START_TAG = re.compile(r"\s*<(?:([A-Za-z_][\w.\-]*):)?([A-Za-z_][\w.\-]*)((?:\s[^<>]*)?)/?>")
_ATTRIBUTE = re.compile(r"([A-Za-z_][\w.:\-]*)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")


def _sniff_text(data: bytes) -> str:
    head = data[: 2 * _SNIFF_BYTES]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace")
    return head[:_SNIFF_BYTES].removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")


def is_read_message(data: bytes) -> bool:
    """Whether ``data`` looks like an LIDC read message, from its first 8 KB only.

    True when the first element is ``LidcReadMessage`` bound to ``http://www.nih.gov``
    (default or prefixed namespace), after an optional BOM, XML declaration, comments and
    DOCTYPE. Nothing is parsed or expanded: a hostile file may sniff True and then fail
    :func:`parse_read_message` with a reason, which is what a caller should report.
    """
    text = _sniff_text(data)
    position = 0
    while True:
        match = _PROLOG.match(text, position) or _DOCTYPE.match(text, position)
        if match is None:
            break
        position = match.end()
    tag = _START_TAG.match(text, position)
    if tag is None or tag.group(2) != ROOT_ELEMENT:
        return False
    prefix = tag.group(1)
    wanted = f"xmlns:{prefix}" if prefix else "xmlns"
    for attribute in _ATTRIBUTE.finditer(tag.group(3)):
        if attribute.group(1) == wanted:
            value = attribute.group(2) or attribute.group(3) or ""
            return value.strip() == LIDC_NAMESPACE
    return False
