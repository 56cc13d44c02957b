"""LIDC read messages for the tests: the real series, a message builder, hostile XML.

The real series (LIDC-IDRI-0002 as TCIA ships it, with its readers' ``071.xml``) lives beside
the repository in ``../shared/data/lidc-idri``; tests that need it skip when it is not there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import ROOT

#: The real LIDC-IDRI series (see its README).
LIDC = ROOT.parent / "shared" / "data" / "lidc-idri"
NS = "http://www.nih.gov"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE LidcReadMessage [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<LidcReadMessage xmlns="http://www.nih.gov"><ResponseHeader>
<SeriesInstanceUid>&lol4;</SeriesInstanceUid></ResponseHeader></LidcReadMessage>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE LidcReadMessage [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<LidcReadMessage xmlns="http://www.nih.gov"><ResponseHeader>
<SeriesInstanceUid>&xxe;</SeriesInstanceUid></ResponseHeader></LidcReadMessage>"""


def real_xml() -> Path:
    """The readers' ``071.xml`` of the real series; skips the test when it is not there."""
    found = sorted(LIDC.glob("LIDC-IDRI-0002/**/071.xml"))
    if not found:
        pytest.skip(f"the real LIDC-IDRI-0002 read message 071.xml is not under {LIDC}")
    return found[0]


def message(sessions: str, header: str = "<SeriesInstanceUid>1.2.3</SeriesInstanceUid>") -> bytes:
    """A read message around ``sessions`` (``<readingSession>`` elements)."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<LidcReadMessage xmlns="{NS}">'
        f"<ResponseHeader>{header}</ResponseHeader>{sessions}</LidcReadMessage>"
    ).encode()
