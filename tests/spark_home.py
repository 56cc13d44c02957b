"""A throwaway ``SPARK_HOME`` for ``local-cluster`` tests."""

from __future__ import annotations

from pathlib import Path


def linked_spark_home(tmp_path: Path) -> Path:
    """``tmp_path/spark_home``: links to pip pyspark's bin, jars, sbin, conf and python.

    ``local-cluster`` launches executors from ``SPARK_HOME/jars`` (pip's pyspark ships them) and
    keeps their work dirs in ``SPARK_HOME/work``: a linked copy keeps those out of the virtualenv.
    """
    import pyspark

    home = tmp_path / "spark_home"
    home.mkdir()
    for name in ("bin", "jars", "sbin", "conf", "python"):
        source = Path(pyspark.__file__).parent / name
        if source.exists():
            (home / name).symlink_to(source)
    return home
