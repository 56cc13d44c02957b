"""What each ``sparkdl`` command does: one function per command, given its parsed arguments.

Each returns the exit code; heavy imports stay inside, so ``sparkdl --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from sparkdl.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def session(args: argparse.Namespace) -> SparkSession:
    """The Spark session of a command: the active one, or one built from ``--master``/``--conf``."""
    from sparkdl.spark import get_spark, parse_conf

    return get_spark(args.master, parse_conf(args.conf))


def cmd_synth(args: argparse.Namespace) -> int:
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


def cmd_ingest(args: argparse.Namespace) -> int:
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
            spark=session(args),
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
        spark=session(args),
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


def cmd_train(args: argparse.Namespace) -> int:
    from sparkdl.training.config import TrainConfig
    from sparkdl.training.job import train

    config = TrainConfig.load(args.config, epochs=args.epochs, batch_size=args.batch_size)
    summary = train(
        args.data,
        args.model_dir,
        config=config,
        num_workers=args.num_workers,
        use_gpu=args.use_gpu,
        spark=session(args),
    )
    shown = {k: v for k, v in summary.items() if k != "workers"}
    print(json.dumps(shown, indent=2, default=str))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sparkdl.evaluation.report import evaluate

    evaluate(args.data, args.model_dir, args.report)
    print((Path(args.report) / "summary.txt").read_text())
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from sparkdl.evaluation.prediction import predict

    result = predict(args.data, args.model_dir, args.output, spark=session(args))
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


def cmd_annotations(args: argparse.Namespace) -> int:
    from sparkdl.ingestion.lidc_stage import write_annotations

    written = write_annotations(args.data, args.output, all_nodules=args.all)
    print(f"{args.output}: {written} nodules (LUNA16 form, pseudonymous series UIDs)")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from sparkdl.inspection import format_summary, inspect_dataset

    summary = inspect_dataset(args.data, report_png=args.png, max_items=args.max_items)
    print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
    return 0
