"""The ``sparkdl`` command line: one sub-command per pipeline stage.

``main(argv)`` is testable (returns an exit code); logging is configured here and nowhere
else in the library. Errors the user can fix print one clear line, not a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sparkdl.errors import ConfigError, SparkdlError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

logger = logging.getLogger("sparkdl")


def _spark_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--master", default=None, help="Spark master (default local[*]; ignored under spark-submit)"
    )
    parser.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Spark conf, repeatable (e.g. --conf spark.driver.memory=4g)",
    )


def _session(args: argparse.Namespace) -> SparkSession:
    from sparkdl.spark import get_spark, parse_conf

    return get_spark(args.master, parse_conf(args.conf))


def _cmd_synth(args: argparse.Namespace) -> int:
    from sparkdl.synth import synthesize_cohort, synthesize_volume_cohort

    common: dict[str, Any] = {
        "num_patients": args.patients,
        "seed": args.seed,
        "image_size": args.image_size,
        "candidates_per_series": args.candidates_per_series,
    }
    if args.format == "dicom":
        summary = synthesize_cohort(
            args.out, archive=args.archive, lidc_xml=args.lidc_xml, **common
        )
    elif args.archive != "none" or args.lidc_xml:
        raise ConfigError(
            f"--format {args.format} writes loose volume files: it takes neither --archive nor "
            "--lidc-xml (both are DICOM-side)."
        )
    else:
        summary = synthesize_volume_cohort(args.out, volume_format=args.format, **common)
    what = "DICOM files" if args.format == "dicom" else f"{args.format} files"
    print(
        f"wrote {summary.num_files} {what} ({summary.num_series} series, "
        f"{summary.num_nodules} nodules, {summary.num_patients} patients) under {summary.dicom_dir}"
    )
    print(f"annotations: {summary.annotations_csv}\ncandidates:  {summary.candidates_csv}")
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from sparkdl.deid import load_key
    from sparkdl.ingestion.config import IngestConfig
    from sparkdl.ingestion.job import ingest
    from sparkdl.ingestion.patch_stage import Labels

    load_key(args.key_file)  # refuse to start (before Spark) without a key
    config = IngestConfig.load(args.config)
    if args.export_dicom:
        config = replace(config, export_dicom=True)
    labels = Labels(
        annotations=args.annotations, candidates=args.candidates, excluded=args.excluded
    )
    if args.watch:
        from sparkdl.ingestion.watch import watch

        if args.inputs or args.mode != "overwrite":
            raise ConfigError(
                "--watch LANDING takes no INPUT and always appends. "
                f"Received inputs {args.inputs} and --mode {args.mode}."
            )
        watch(
            args.watch,
            args.output,
            spark=_session(args),
            checkpoint=args.checkpoint,
            labels=labels,
            config=config,
            key_file=args.key_file,
            trigger_seconds=args.trigger_seconds,
            once=args.once,
        )
        return 0
    if not args.inputs:
        raise ConfigError("ingest needs at least one INPUT (or --watch LANDING).")
    manifest = ingest(
        args.inputs,
        args.output,
        labels=labels,
        config=config,
        mode=args.mode,
        key_file=args.key_file,
        spark=_session(args),
    )
    if not manifest.get("changed", True):
        print(f"{args.output}: no new inputs since the last run; nothing changed")
        return 0
    counts = manifest["counts"]
    print(
        json.dumps(
            {
                "output": args.output,
                **counts,
                "last_run": manifest.get("last_run"),
                "rejected_by_reason": manifest["rejected_by_reason"],
            },
            indent=2,
        )
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from sparkdl.training.config import TrainConfig
    from sparkdl.training.job import train

    config = TrainConfig.load(args.config, epochs=args.epochs, batch_size=args.batch_size)
    summary = train(
        args.data,
        args.model_dir,
        config=config,
        num_workers=args.num_workers,
        use_gpu=args.use_gpu,
        spark=_session(args),
    )
    shown = {k: v for k, v in summary.items() if k != "workers"}
    print(json.dumps(shown, indent=2, default=str))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sparkdl.evaluation.report import evaluate

    evaluate(args.data, args.model_dir, args.report)
    print((Path(args.report) / "summary.txt").read_text())
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from sparkdl.evaluation.prediction import predict

    result = predict(args.data, args.model_dir, args.output, spark=_session(args))
    if args.submission:
        from sparkdl.deid import load_key
        from sparkdl.evaluation.submission import write_submission

        key = load_key(args.key_file) if args.original_ids_from else None
        result.update(
            write_submission(
                args.output, args.submission, originals_from=args.original_ids_from, key=key
            )
        )
    print(json.dumps(result, indent=2, default=str))
    return 0


def _cmd_annotations(args: argparse.Namespace) -> int:
    from sparkdl.ingestion.lidc_stage import write_annotations

    written = write_annotations(args.out, args.csv, all_nodules=args.all)
    print(f"{args.csv}: {written} nodules (LUNA16 form, pseudonymous series UIDs)")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from sparkdl.inspection import format_summary, inspect_dataset

    summary = inspect_dataset(args.out, report_png=args.png, max_items=args.max_items)
    print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
    return 0


def _loudness_args(parser: argparse.ArgumentParser, default: object) -> None:
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="everything: debug logging, Spark's own logging, TensorFlow's GPU probing",
    )
    loudness.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="no progress lines and no INFO logging; results, warnings and errors still print",
    )


def build_parser() -> argparse.ArgumentParser:  # noqa: PLR0915 - one call per option
    """The argument parser of every command.

    Long on purpose: it declares each command's options in one place, which is also where
    ``--help`` text comes from; split by command it would only scatter that reference.
    """
    parser = argparse.ArgumentParser(
        prog="sparkdl", description="De-identified DICOM to deep learning on Apache Spark."
    )
    _loudness_args(parser, default=False)
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser(
        "synth", help="write a synthetic chest-CT DICOM cohort with nodules"
    )
    synth.add_argument("out", help="output folder")
    synth.add_argument("--patients", type=int, default=10)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--archive", choices=["none", "zip", "tar"], default="none")
    synth.add_argument("--image-size", type=int, default=128, help="rows = columns per slice")
    synth.add_argument(
        "--lidc-xml",
        action="store_true",
        help="also an LIDC read message (readers' XML with malignancy ratings) per axial series",
    )
    synth.add_argument(
        "--format",
        choices=["dicom", "mhd", "nifti"],
        default="dicom",
        help="how the CT series are written: DICOM (default), or one MetaImage (.mhd + .raw, "
        "as LUNA16) or NIfTI (.nii.gz) file per series named by its SeriesInstanceUID",
    )
    synth.add_argument(
        "--candidates-per-series",
        type=int,
        default=None,
        metavar="N",
        help="LUNA16-sized candidates.csv: N non-nodule points per series besides the nodules",
    )
    synth.set_defaults(func=_cmd_synth)

    ing = commands.add_parser(
        "ingest", help="de-identify and catalog DICOM; build volumes and patches"
    )
    ing.add_argument(
        "inputs", nargs="*", help="folders, .zip, .tar(.gz) or files (any Hadoop path)"
    )
    ing.add_argument("--output", required=True, help="output dataset folder")
    ing.add_argument("--annotations", help="LUNA16-style annotations.csv (world mm)")
    ing.add_argument("--candidates", help="LUNA16-style candidates.csv")
    ing.add_argument(
        "--excluded",
        help="LUNA16's annotations_excluded.csv: findings evaluation neither counts as hits nor "
        "as false positives (FROC)",
    )
    ing.add_argument("--config", help="ingest YAML (see conf/ingest.yaml)")
    ing.add_argument(
        "--export-dicom",
        action="store_true",
        help="also write de-identified DICOM (config: export_dicom)",
    )
    ing.add_argument(
        "--key-file",
        help="file holding the de-identification key "
        "(default: environment variable SPARKDL_DEID_KEY)",
    )
    ing.add_argument(
        "--mode",
        choices=["overwrite", "append"],
        default="overwrite",
        help="append: catalog only inputs not seen before (by content) and rebuild "
        "the series they touch",
    )
    ing.add_argument(
        "--watch",
        metavar="LANDING",
        help="stream: ingest files as they land in LANDING (Structured Streaming)",
    )
    ing.add_argument(
        "--checkpoint", help="with --watch: the stream's checkpoint (default OUT_checkpoint)"
    )
    ing.add_argument(
        "--trigger-seconds", type=int, default=60, help="with --watch: seconds between batches"
    )
    ing.add_argument(
        "--once", action="store_true", help="with --watch: ingest what has landed, then stop"
    )
    _spark_args(ing)
    ing.set_defaults(func=_cmd_ingest)

    tr = commands.add_parser("train", help="distributed training on Spark barrier tasks")
    tr.add_argument("--data", required=True, help="an ingest output folder (with patches/)")
    tr.add_argument("--model-dir", required=True, help="where the model, history and logs go")
    tr.add_argument("--config", help="training YAML (see conf/train.yaml)")
    tr.add_argument("--num-workers", type=int, default=1, help="TF workers = Spark barrier tasks")
    tr.add_argument(
        "--use-gpu", action="store_true", help="one GPU set per worker from Spark scheduling"
    )
    tr.add_argument("--epochs", type=int, help="overrides the config")
    tr.add_argument("--batch-size", type=int, help="global batch size; overrides the config")
    _spark_args(tr)
    tr.set_defaults(func=_cmd_train)

    ev = commands.add_parser("evaluate", help="metrics and ROC on the test split")
    ev.add_argument("--model-dir", required=True)
    ev.add_argument("--data", required=True)
    ev.add_argument(
        "--report", required=True, help="folder for metrics.json, roc.png, curves.png, summary.txt"
    )
    ev.set_defaults(func=_cmd_evaluate)

    pr = commands.add_parser("predict", help="Spark batch inference over patches to Parquet")
    pr.add_argument("--model-dir", required=True)
    pr.add_argument("--data", required=True)
    pr.add_argument("--output", required=True, help="Parquet folder for the predictions")
    pr.add_argument(
        "--submission",
        metavar="CSV",
        help="also LUNA16's seriesuid,coordX,coordY,coordZ,probability CSV of the candidate "
        "patches (pseudonymous series ids)",
    )
    pr.add_argument(
        "--original-ids-from",
        metavar="CSV",
        help="with --submission: map the series ids back to the originals listed in this CSV "
        "(its seriesuid column, e.g. the candidates file); needs the de-identification key",
    )
    pr.add_argument("--key-file", help="the key for --original-ids-from (else SPARKDL_DEID_KEY)")
    _spark_args(pr)
    pr.set_defaults(func=_cmd_predict)

    ins = commands.add_parser("inspect", help="what a dataset holds, and a PNG sheet")
    ins.add_argument("out", help="an ingest output folder")
    ins.add_argument("--png", help="where to write the picture (default OUT/inspect.png)")
    ins.add_argument("--max-items", type=int, default=6, help="patches and volumes drawn")
    ins.add_argument("--json", action="store_true", help="print the summary as JSON")
    ins.set_defaults(func=_cmd_inspect)
    ann = commands.add_parser(
        "annotations", help="the LIDC nodules of a dataset as a LUNA16-form annotations.csv"
    )
    ann.add_argument("out", help="an ingest output folder (with nodules/)")
    ann.add_argument("csv", help="the CSV to write")
    ann.add_argument("--all", action="store_true", help="every outlined nodule, not only positives")
    ann.set_defaults(func=_cmd_annotations)
    for command in commands.choices.values():  # also after the command: sparkdl ingest -q
        _loudness_args(command, default=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from sparkdl import progress
    from sparkdl.spark import VERBOSE_ENV_VAR

    if args.verbose:
        os.environ[VERBOSE_ENV_VAR] = "1"
    if args.quiet:
        os.environ[progress.ENV_VAR] = "0"
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
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
