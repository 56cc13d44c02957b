"""Import sparkdl from the ``--py-files`` zip alone (tests/cli/test_submit.py).

Usage: ``BARE_PYTHON tests/scripts/import_from_zip.py ZIP``, with a Python that cannot
import sparkdl otherwise. Prints ``RESULT <json>``: the ``file`` ``sparkdl.cli`` was loaded
from, and ``num_rules``, how many rules the de-identification table (``rules.json``, read from
inside the zip) holds.
"""

from __future__ import annotations

import json
import sys


def main(zip_path: str) -> None:
    sys.path.insert(1, zip_path)
    import sparkdl.cli
    from sparkdl.deid.rules import load_rules

    table = load_rules()
    print("RESULT " + json.dumps({"file": sparkdl.cli.__file__, "num_rules": len(table.rules)}))


if __name__ == "__main__":
    main(sys.argv[1])
