"""spark-submit entry point: ``spark-submit [options] scripts/sparkdl_main.py COMMAND [args]``.

Runs ``sparkdl COMMAND [args]`` inside the driver spark-submit started, so the session that
``sparkdl.spark.get_spark`` returns is the one spark-submit configured (master, --conf,
--properties-file). spark-submit needs a .py file as the application; the package itself
comes from ``--py-files dist/sparkdl-<version>.zip`` (see scripts/package_env.sh) or from
an installed sparkdl. Use scripts/submit_ingest.sh / submit_train.sh rather than calling
this directly: they build the zip and choose the Python for the executors.
"""

from __future__ import annotations

import sys

from sparkdl.cli import main

if __name__ == "__main__":
    sys.exit(main())
