"""What each ``sparkdl`` command does: one function per command, given its parsed arguments.

Each returns the exit code; heavy imports stay inside, so ``sparkdl --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from sparkdl.cli import summaries
from sparkdl.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def _print(args: argparse.Namespace, result: Any, lines: list[str]) -> None:
    """The command's result on stdout: its summary lines, or with ``--json`` the whole of it."""
    print(summaries.as_json(result) if args.json else "\n".join(lines))


def _history(model_dir: str) -> dict[str, Any] | None:
    """``M/history.json``, for the last epoch's metrics (None when it cannot be read)."""
    from sparkdl.store.storage import join, open_input
    from sparkdl.training.artifact import HISTORY_FILE

    try:
        with open_input(join(model_dir, HISTORY_FILE)) as handle:
            history: dict[str, Any] = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    return history


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
    print("\n".join(summaries.synth_lines(summary, what)))
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from sparkdl.deid import load_key
    from sparkdl.ingestion.config import IngestConfig
    from sparkdl.ingestion.discover import check_inputs_exist
    from sparkdl.ingestion.job import ingest
    from sparkdl.ingestion.patch_stage import Labels

    # Everything a user can get wrong is refused before Spark starts (~5 s).
    load_key(args.key_file)
    config = IngestConfig.load(args.config)
    if args.export_dicom:
        config = replace(config, export_dicom=True)
    labels = Labels(
        annotations=args.annotations, candidates=args.candidates, excluded=args.excluded
    )
    labels.check_files()
    if args.watch:
        return _watch(args, labels, config)
    if not args.inputs:
        raise ConfigError("ingest needs at least one INPUT (or --watch LANDING).")
    check_inputs_exist(args.inputs)
    manifest = ingest(
        args.inputs,
        args.output,
        labels=labels,
        config=config,
        mode=args.mode,
        key_file=args.key_file,
        spark=session(args),
    )
    _print(args, manifest, summaries.ingest_lines(manifest, args.output))
    return 0


def _watch(args: argparse.Namespace, labels: Any, config: Any) -> int:
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
    _print(args, summary, summaries.train_lines(summary, _history(args.model_dir)))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sparkdl.evaluation.report import evaluate

    evaluate(args.data, args.model_dir, args.report, split=args.split)
    print((Path(args.report) / "summary.txt").read_text())
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from sparkdl.evaluation.prediction import predict

    key = None
    if args.original_ids_from:
        from sparkdl.deid import load_key
        from sparkdl.patches.points import read_points_csv

        if not args.submission:
            raise ConfigError("--original-ids-from maps the ids of --submission CSV: give both.")
        key = load_key(args.key_file, for_mapping_back=True)  # before any work
        read_points_csv(args.original_ids_from, "candidates")  # a bad CSV fails now too
    result = predict(args.data, args.model_dir, args.output, spark=session(args))
    if args.submission:
        from sparkdl.evaluation.submission import write_submission

        result["submission"] = write_submission(
            args.output, args.submission, originals_from=args.original_ids_from, key=key
        )
        if "note" in result["submission"]:
            print(f"sparkdl predict: warning: {args.submission}: {result['submission']['note']}",
                  file=sys.stderr)  # fmt: skip
    _print(args, result, summaries.predict_lines(result))
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


def cmd_detect(args: argparse.Namespace) -> int:
    from sparkdl.evaluation.detection import DetectOptions, detect

    options = DetectOptions(args.threshold, args.max_per_scan, args.split)  # before Spark
    result = detect(
        args.data,
        args.model_dir,
        args.output,
        options=options,
        malignancy_model=args.malignancy_model,
        pictures=args.pictures,
        spark=session(args),
    )
    _print(args, result, summaries.detect_lines(result))
    return 0


def cmd_candidates(args: argparse.Namespace) -> int:
    from sparkdl.evaluation.detection import write_candidates_csv

    written = write_candidates_csv(args.data, args.output)
    print(f"candidates: {args.output}: {written:,} candidates (LUNA16 form, pseudonymous ids)")
    return 0
