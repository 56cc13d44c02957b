"""One input unit in, one record out, on the executors: archives, DICOM, volume files.

Every regular file and archive member under the inputs is one unit
(:mod:`~sparkdl.units.archives` reads them, bounded); a DICOM unit is parsed, checked and
de-identified (:mod:`~sparkdl.units.parse`, with :mod:`sparkdl.deid`; its header as DICOM
JSON in :mod:`~sparkdl.units.header_json`, its exported bytes in
:mod:`~sparkdl.units.encoding`), a MetaImage or NIfTI file becomes one volume record
(:mod:`~sparkdl.units.volume_file`). Nothing here raises for bad input: every problem is a
stable reason code.
"""
