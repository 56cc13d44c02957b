"""The ``sparkdl`` command line: one sub-command per pipeline stage.

``main(argv)`` is testable (returns an exit code); logging is configured here and nowhere
else in the library. Errors the user can fix print one clear line, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from .errors import SparkdlError

logger = logging.getLogger("sparkdl")


def _spark_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", default=None,
                        help="Spark master (default local[*]; ignored under spark-submit)")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="Spark conf, repeatable (e.g. --conf spark.driver.memory=4g)")


def _session(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .spark import get_spark, parse_conf

    return get_spark(args.master, parse_conf(args.conf))


def _cmd_synth(args: argparse.Namespace) -> int:
    from .synth import synthesize_cohort

    summary = synthesize_cohort(args.out, num_patients=args.patients, seed=args.seed,
                                archive=args.archive, image_size=args.image_size)
    print(f"wrote {summary.num_files} DICOM files ({summary.num_series} series, "
          f"{summary.num_nodules} nodules, {summary.num_patients} patients) under {summary.dicom_dir}")
    print(f"annotations: {summary.annotations_csv}\ncandidates:  {summary.candidates_csv}")
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from .deid import load_key
    from .ingest import IngestConfig, ingest

    load_key(args.key_file)  # refuse to start (before Spark) without a key
    config = IngestConfig.load(args.config)
    manifest = ingest(args.inputs, args.output, spark=_session(args), annotations=args.annotations,
                      candidates=args.candidates, config=config, export_dicom=args.export_dicom,
                      key_file=args.key_file)
    counts = manifest["counts"]
    print(json.dumps({"output": args.output, **counts,
                      "rejected_by_reason": manifest["rejected_by_reason"]}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparkdl", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="write a synthetic chest-CT DICOM cohort with nodules")
    synth.add_argument("out", help="output folder")
    synth.add_argument("--patients", type=int, default=10)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--archive", choices=["none", "zip", "tar"], default="none")
    synth.add_argument("--image-size", type=int, default=128, help="rows = columns per slice")
    synth.set_defaults(func=_cmd_synth)

    ing = commands.add_parser("ingest", help="de-identify and catalog DICOM; build volumes and patches")
    ing.add_argument("inputs", nargs="+", help="folders, .zip, .tar(.gz) or files (any Hadoop path)")
    ing.add_argument("--output", required=True, help="output dataset folder")
    ing.add_argument("--annotations", help="LUNA16-style annotations.csv (world mm)")
    ing.add_argument("--candidates", help="LUNA16-style candidates.csv")
    ing.add_argument("--config", help="ingest YAML (see conf/ingest.yaml)")
    ing.add_argument("--export-dicom", action="store_true", help="also write de-identified DICOM")
    ing.add_argument("--key-file", help="file holding the de-identification key "
                                        "(default: environment variable SPARKDL_DEID_KEY)")
    _spark_args(ing)
    ing.set_defaults(func=_cmd_ingest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("py4j", "petastorm", "pyarrow", "tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except SparkdlError as err:
        print(f"sparkdl {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
