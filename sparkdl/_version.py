"""sparkdl's version, in a leaf module: the package and its leaves read it without a cycle."""

__version__ = "0.1.0"
