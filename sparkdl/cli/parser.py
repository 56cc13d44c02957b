"""The ``sparkdl`` argument parser: every command's options and ``--help`` text.

Naming: a dataset (an ingest output) is read through ``--data OUT`` by every command, and
``--output`` names only what a command writes (``ingest --output OUT``, ``predict --output
P``, ``annotations --output CSV``). The positional ``OUT`` that ``inspect`` and
``annotations`` took before still works, with one line saying the new spelling
(:func:`resolve_deprecated`).
"""

from __future__ import annotations

import argparse
import sys

from sparkdl.cli import commands


class _FORMATTER(argparse.HelpFormatter):
    """Each option's help ends with its default, when it has one worth saying."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        quiet = default is None or default is False or default in ([], argparse.SUPPRESS)
        if quiet or "%(default)" in text:
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command, one ``_add_<command>`` each."""
    parser = argparse.ArgumentParser(
        prog="sparkdl", description="De-identified DICOM to deep learning on Apache Spark."
    )
    _loudness_args(parser, default=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_synth,
        _add_ingest,
        _add_train,
        _add_evaluate,
        _add_predict,
        _add_detect,
        _add_inspect,
        _add_annotations,
        _add_candidates,
    ):
        add(sub)
    for command in sub.choices.values():  # also after the command: sparkdl ingest -q
        _loudness_args(command, default=argparse.SUPPRESS)
    return parser


def resolve_deprecated(args: argparse.Namespace) -> None:
    """Old spellings still work: ``inspect OUT`` and ``annotations OUT CSV`` (positional)
    become ``--data OUT`` and ``--output CSV``, with one line on stderr saying so."""
    command = args.command
    old_data = getattr(args, "old_data", None)
    if old_data is not None:
        if args.data is not None and args.data != old_data:
            raise SystemExit(f"sparkdl {command}: error: give OUT once, as --data OUT")
        args.data = old_data
        print(
            f"sparkdl {command}: the positional OUT is deprecated; use --data OUT",
            file=sys.stderr,
        )
    old_output = getattr(args, "old_output", None)
    if old_output is not None:
        args.output = args.output or old_output
        print(
            f"sparkdl {command}: the positional CSV is deprecated; use --output CSV",
            file=sys.stderr,
        )
    for name in ("data", "output"):
        if name in vars(args) and getattr(args, name) is None:
            raise SystemExit(f"sparkdl {command}: error: --{name} is required")


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


def _spark_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--master",
        default=None,
        help="Spark master (local[*] if unset; ignored under spark-submit)",
    )
    parser.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Spark conf, repeatable (e.g. --conf spark.driver.memory=4g)",
    )


def _json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print the whole result as JSON (for scripts)"
    )


def _data_arg(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--data", metavar="OUT", help=f"an ingest output folder ({what})")


def _add_synth(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    synth = sub.add_parser(
        "synth",
        help="write a synthetic chest-CT DICOM cohort with nodules",
        formatter_class=_FORMATTER,
    )
    synth.add_argument("out", help="output folder (created)")
    synth.add_argument("--patients", type=int, default=10, help="number of patients")
    synth.add_argument("--seed", type=int, default=0, help="random seed: same seed, same cohort")
    synth.add_argument(
        "--archive",
        choices=["none", "zip", "tar"],
        default="none",
        help="one archive per patient instead of loose files",
    )
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
        help="how the CT series are written: DICOM, or one MetaImage (.mhd + .raw, as LUNA16) "
        "or NIfTI (.nii.gz) file per series named by its SeriesInstanceUID",
    )
    synth.add_argument(
        "--candidates-per-series",
        type=int,
        default=None,
        metavar="N",
        help="LUNA16-sized candidates.csv: N non-nodule points per series besides the nodules "
        "(unset: a few)",
    )
    synth.set_defaults(func=commands.cmd_synth)


def _add_ingest(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ing = sub.add_parser(
        "ingest",
        help="de-identify and catalog DICOM; build volumes and patches",
        formatter_class=_FORMATTER,
    )
    ing.add_argument(
        "inputs", nargs="*", help="folders, .zip, .tar(.gz) or files (any Hadoop path)"
    )
    ing.add_argument("--output", metavar="OUT", required=True, help="the dataset folder written")
    ing.add_argument("--annotations", help="LUNA16-style annotations.csv (world mm)")
    ing.add_argument("--candidates", help="LUNA16-style candidates.csv")
    ing.add_argument(
        "--excluded",
        help="LUNA16's annotations_excluded.csv: findings evaluation neither counts as hits nor "
        "as false positives (FROC)",
    )
    ing.add_argument("--config", help="ingest YAML (see conf/ingest.yaml; unset: the defaults)")
    ing.add_argument(
        "--export-dicom",
        action="store_true",
        help="also write de-identified DICOM (config: export_dicom)",
    )
    ing.add_argument(
        "--key-file",
        help="file holding the de-identification key (unset: environment variable "
        "SPARKDL_DEID_KEY)",
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
        "--checkpoint", help="with --watch: the stream's checkpoint (unset: OUT_checkpoint)"
    )
    ing.add_argument(
        "--trigger-seconds", type=int, default=60, help="with --watch: seconds between batches"
    )
    ing.add_argument(
        "--once", action="store_true", help="with --watch: ingest what has landed, then stop"
    )
    _json_arg(ing)
    _spark_args(ing)
    ing.set_defaults(func=commands.cmd_ingest)


def _add_train(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tr = sub.add_parser(
        "train", help="distributed training on Spark barrier tasks", formatter_class=_FORMATTER
    )
    _data_arg(tr, "with patches/")
    tr.add_argument(
        "--model-dir", required=True, help="where the model, its config, history and logs go"
    )
    tr.add_argument("--config", help="training YAML (see conf/train.yaml; unset: the defaults)")
    tr.add_argument("--num-workers", type=int, default=1, help="TF workers = Spark barrier tasks")
    tr.add_argument(
        "--use-gpu", action="store_true", help="one GPU set per worker from Spark scheduling"
    )
    tr.add_argument("--epochs", type=int, help="overrides the config's epochs")
    tr.add_argument("--batch-size", type=int, help="global batch size; overrides the config's")
    _json_arg(tr)
    _spark_args(tr)
    tr.set_defaults(func=commands.cmd_train)


def _add_evaluate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ev = sub.add_parser(
        "evaluate",
        help="metrics, ROC and FROC on the test split",
        formatter_class=_FORMATTER,
    )
    ev.add_argument("--model-dir", required=True, help="a folder `sparkdl train` wrote")
    _data_arg(ev, "with patches/")
    ev.add_argument(
        "--report",
        required=True,
        help="folder for metrics.json, roc.png, froc.png (candidate patches), curves.png, "
        "summary.txt",
    )
    ev.add_argument(
        "--split", choices=["train", "val", "test"], default="test", help="the split evaluated"
    )
    ev.set_defaults(func=commands.cmd_evaluate)


def _add_predict(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pr = sub.add_parser(
        "predict",
        help="Spark batch inference over patches to Parquet",
        formatter_class=_FORMATTER,
    )
    pr.add_argument("--model-dir", required=True, help="a folder `sparkdl train` wrote")
    _data_arg(pr, "with patches/")
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
        "(its seriesuid column, e.g. the candidates file); needs the ingest's key",
    )
    pr.add_argument(
        "--key-file",
        help="the ingest's key, for --original-ids-from (unset: SPARKDL_DEID_KEY)",
    )
    _json_arg(pr)
    _spark_args(pr)
    pr.set_defaults(func=commands.cmd_predict)


def _add_inspect(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ins = sub.add_parser(
        "inspect", help="what a dataset holds, and a PNG sheet", formatter_class=_FORMATTER
    )
    _data_arg(ins, "what to look at")
    ins.add_argument("old_data", nargs="?", metavar="OUT", help="deprecated: use --data OUT")
    ins.add_argument("--png", help="where to write the picture (unset: OUT/inspect.png)")
    ins.add_argument("--max-items", type=int, default=6, help="patches and volumes drawn")
    ins.add_argument("--json", action="store_true", help="print the summary as JSON")
    ins.set_defaults(func=commands.cmd_inspect)


def _add_annotations(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ann = sub.add_parser(
        "annotations",
        help="the LIDC nodules of a dataset as a LUNA16-form annotations.csv",
        formatter_class=_FORMATTER,
    )
    _data_arg(ann, "with nodules/: LIDC read messages were among its inputs")
    ann.add_argument("--output", metavar="CSV", help="the CSV to write")
    ann.add_argument("old_data", nargs="?", metavar="OUT", help="deprecated: use --data OUT")
    ann.add_argument("old_output", nargs="?", metavar="CSV", help="deprecated: use --output CSV")
    ann.add_argument("--all", action="store_true", help="every outlined nodule, not only positives")
    ann.set_defaults(func=commands.cmd_annotations)


def _add_detect(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    det = sub.add_parser(
        "detect",
        help="find nodules: score every candidate, one detection per finding, a CSV",
        formatter_class=_FORMATTER,
    )
    _data_arg(det, "with candidate patches: generated by ingest or listed")
    det.add_argument("--model-dir", required=True, help="a nodule model `sparkdl train` wrote")
    det.add_argument(
        "--output",
        metavar="CSV",
        required=True,
        help="seriesuid,coordX,coordY,coordZ,diameter_mm,probability (+ malignancy)",
    )
    det.add_argument(
        "--malignancy-model", metavar="M", help="a malignancy model: adds a malignancy column"
    )
    det.add_argument("--threshold", type=float, help="keep detections at or above this probability")
    det.add_argument(
        "--max-per-scan", type=int, default=20, help="keep the most probable N per scan"
    )
    det.add_argument(
        "--split", choices=["train", "val", "test"], help="one split's scans (unset: all)"
    )
    det.add_argument(
        "--pictures", metavar="DIR", help="one PNG per series, its top detections marked"
    )
    _json_arg(det)
    _spark_args(det)
    det.set_defaults(func=commands.cmd_detect)


def _add_candidates(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    can = sub.add_parser(
        "candidates",
        help="the candidates ingest generated, as a LUNA16-form candidates.csv",
        formatter_class=_FORMATTER,
    )
    _data_arg(can, "with candidates/")
    can.add_argument("--output", metavar="CSV", help="the CSV to write")
    can.set_defaults(func=commands.cmd_candidates)
