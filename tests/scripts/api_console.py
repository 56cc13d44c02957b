"""The Python API as a user calls it in a fresh process (tests/cli/test_console.py).

Usage: ``python tests/scripts/api_console.py DATA MODEL REPORT``: ``sparkdl.evaluate`` and
``sparkdl.predict`` on a dataset and a model, without ``TF_CPP_MIN_LOG_LEVEL``; prints
``RESULT <json>`` with the AUC. The test reads what reached stderr.
"""

from __future__ import annotations

import json
import sys

import sparkdl


def main(data: str, model: str, report: str) -> None:
    metrics = sparkdl.evaluate(data, model, report)
    scored = sparkdl.predict(data, model, report + "-predictions", spark=sparkdl.get_spark())
    print("RESULT " + json.dumps({"auc": metrics["auc"], "rows": scored["rows"]}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
