"""`labline report [RUN ...]`: one self-contained HTML page of a run, or of several side by side.

Exit codes: 0 the page was written, 2 no such run (or no runs yet), or a bad option.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from labline.commands.common import CommandError, add_runs_option, resolve_runs
from labline.report.page import NOTEBOOK_MODES
from runner.exit_codes import ExitCode


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="write one HTML page of a run (or several, side by side)")
    parser.add_argument("run", nargs="*", help="run ids, unique prefixes, 'latest' or run folders (default: latest)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE.html",
        help="where to write the page (default: report.html in the run's folder)",
    )
    parser.add_argument(
        "--notebooks",
        choices=NOTEBOOK_MODES,
        default="embed",
        help="executed notebooks inside the page (embed), as files beside it (link), or left out",
    )
    add_runs_option(parser)
    parser.set_defaults(handler=cmd_report)


def load_runs(names: list[str], runs_root: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Each run named by id, prefix, 'latest' or folder, as (folder, manifest)."""
    from runner.errors import RunnerError
    from runner.records import MANIFEST, find_run

    runs = []
    for name in names or ["latest"]:
        folder = Path(name)
        if (folder / MANIFEST).is_file():
            runs.append((folder.resolve(), json.loads((folder / MANIFEST).read_text())))
            continue
        try:
            record = find_run(runs_root, name)
        except RunnerError as exc:
            raise CommandError(f"{exc}" if names else f"no runs in {runs_root} yet: `labline run` makes one") from None
        runs.append((record.path, record.manifest))
    return runs


def default_out(runs: list[tuple[Path, dict[str, Any]]]) -> Path:
    if len(runs) == 1:
        return runs[0][0] / "report.html"
    return runs[-1][0].parent / f"report-{'-vs-'.join(m['run_id'][-6:] for _, m in runs)}.html"


def cmd_report(args: argparse.Namespace) -> int:
    from labline.report import write_report

    runs = load_runs(list(args.run), resolve_runs(args))
    path = write_report(runs, args.out or default_out(runs), notebooks=args.notebooks)
    print(path)
    return ExitCode.OK
