"""The file meta of a de-identified instance describes its writer, sparkdl, not the source.

PS3.10 section 7.1: Implementation Class UID (0002,0012) and Implementation Version Name
(0002,0013) identify the implementation that wrote the file, and a site's own UID root or
version string can name the institution or its PACS. Source, Sending and Receiving
Application Entity Titles (0002,0016-0018), their presentation addresses (0002,0026-0028) and
Private Information (0002,0100/0102) name the systems the file came from. The rewritten file
meta keeps only what describes the instance itself (its SOP class, its remapped SOP instance
UID, its transfer syntax) and names pydicom's implementation UID, since pydicom writes the
bytes, with sparkdl's version name.
"""

from __future__ import annotations

from pydicom.datadict import keyword_for_tag
from pydicom.dataset import FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from sparkdl._version import __version__

#: File meta elements that describe the instance, kept (the SOP instance UID already remapped).
KEPT = frozenset(
    {
        "FileMetaInformationVersion",
        "MediaStorageSOPClassUID",
        "MediaStorageSOPInstanceUID",
        "TransferSyntaxUID",
    }
)
#: (0002,0013) is SH: at most 16 characters.
IMPLEMENTATION_VERSION_NAME = f"SPARKDL_{__version__}"[:16]


def rewrite_file_meta(file_meta: FileMetaDataset) -> int:
    """Keep the instance's own file meta, name the writer; return how many elements went."""
    # keys(): iterating the data set itself would convert every element.
    dropped = [tag for tag in file_meta.keys() if keyword_for_tag(tag) not in KEPT]  # noqa: SIM118
    for tag in dropped:
        del file_meta[tag]
    file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return len(dropped)
