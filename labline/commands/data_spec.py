"""`labline data spec` and `labline data validate`: a data set's declaration, and checking a batch against it.

    labline data spec FILE --target COL        print the spec inferred from a file (save it, edit it)
    labline data spec census                   print a built-in data set's declaration
    labline data validate FILE --dataset census [--reference FILE] [--report PATH]
    labline data validate FILE --spec spec.json [--reference FILE]

`validate` prints the report as Markdown and exits 0 when every blocking check passes, 1 when
one fails (the same checks that stop `labline run`), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from labline.data.datasets import BUILTIN, DatasetError, builtin_names, get_spec, read_table
from labline.data.spec import DatasetSpec, infer_spec
from runner.exit_codes import ExitCode


def register_data(subparsers) -> None:
    spec = subparsers.add_parser("spec", help="print a data set's spec as JSON (inferred from a file, or built in)")
    spec.add_argument("source", help="a CSV/Parquet file, or a built-in data set name")
    spec.add_argument("--target", help="the label column (needed for a file)")
    spec.add_argument("--name", help="the spec's name (default: the file name)")
    spec.add_argument("-o", "--output", type=Path, help="write the JSON here instead of printing it")
    spec.set_defaults(handler=cmd_spec)

    validate = subparsers.add_parser("validate", help="check a data batch against a data set's spec")
    validate.add_argument("file", type=Path, help="the batch to check (CSV or Parquet)")
    validate.add_argument(
        "--dataset", help=f"a built-in data set whose declaration applies ({', '.join(builtin_names())})"
    )
    validate.add_argument("--spec", type=Path, help="a spec JSON file (from `labline data spec`) instead of --dataset")
    validate.add_argument("--reference", type=Path, help="a known-good batch: also compare distributions with it")
    validate.add_argument(
        "--kl-threshold", type=float, default=None, help="KL divergence bound per categorical column (default 0.2)"
    )
    validate.add_argument(
        "--alpha", type=float, default=None, help="KS test significance before correction (default 0.05)"
    )
    validate.add_argument("--report", type=Path, help="also save the Markdown report here")
    validate.add_argument("--json", action="store_true", help="print the report as JSON instead of Markdown")
    validate.set_defaults(handler=cmd_validate)


def cmd_spec(args: argparse.Namespace) -> int:
    from labline.commands.common import CommandError

    source = args.source
    if source.split(":")[0] in BUILTIN and not Path(source).exists():
        spec = get_spec(source)
    else:
        if not args.target:
            raise CommandError(f"{source!r} is a file: name its label column with --target COLUMN")
        try:
            frame = read_table(source)
            spec = infer_spec(frame, args.target, name=args.name or Path(source).name.split(".")[0])
        except (DatasetError, KeyError) as exc:
            raise CommandError(str(exc).strip('"')) from None
    text = spec.to_json() + "\n"
    if args.output:
        args.output.write_text(text)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return ExitCode.OK


def _spec_for(args: argparse.Namespace) -> DatasetSpec:
    from labline.commands.common import CommandError

    if bool(args.dataset) == bool(args.spec):
        raise CommandError("give exactly one of --dataset NAME (a built-in data set) or --spec FILE (a spec JSON)")
    if args.spec:
        try:
            return DatasetSpec.from_file(args.spec)
        except (OSError, ValueError, TypeError) as exc:
            raise CommandError(f"cannot read spec {str(args.spec)!r}: {exc}") from None
    if args.dataset.split(":")[0] not in BUILTIN:
        raise CommandError(
            f"unknown data set {args.dataset!r}; built-in data sets: {', '.join(builtin_names())} "
            "(for your own file, save a spec with `labline data spec` and pass --spec)"
        )
    return get_spec(args.dataset)


def cmd_validate(args: argparse.Namespace) -> int:
    from labline.commands.common import CommandError
    from labline.data.validate import read_batch, validate

    spec = _spec_for(args)
    try:
        frame = read_batch(args.file, spec)
        reference = read_batch(args.reference, spec) if args.reference else None
        report = validate(frame, spec, reference=reference, kl_threshold=args.kl_threshold, alpha=args.alpha)
    except (DatasetError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    if args.report:
        report.save(args.report)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.to_markdown(), end="")
    if not report.passed:
        where = f"; report: {args.report}" if args.report else ""
        print(
            f"\n{args.file}: {len(report.failures)} blocking checks failed: "
            + ", ".join(c.name for c in report.failures)
            + where
        )
    return ExitCode.OK if report.passed else ExitCode.FAILED
