"""sparkdl: de-identified DICOM to deep learning on Apache Spark."""

__version__ = "0.1.0"
