"""The exit codes of every labline command, in one place (README's "Exit codes" table mirrors it).

A script can tell "the tool found a problem" (1, 4) from "the tool was used wrongly" (2) from
"the tool itself broke" (5) from "try again later" (6) from "the file system refused" (7) without parsing any output.
`labline.cli.main` returns one of these for every command; tests/test_exit_codes.py runs each.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # done; every step, check and submission as expected
    FAILED = 1  # a step, a check, a gate or a drift alert said no; or a submission could not be graded
    USAGE = 2  # bad command line, parameter, data file or pipeline.yaml: found before any kernel starts
    TIMEOUT = 3  # a step (or a notebook) ran past its time limit
    KEPT_CHAMPION = 4  # retrain finished and kept the current champion (the challenger was not better)
    CRASHED = 5  # the tool itself failed (a bug, a crashed monitor notebook): not a verdict on the data
    LOCKED = 6  # another retrain holds the lock: nothing was done, try again later
    ENVIRONMENT = 7  # the system refused a file operation (a folder not writable, a full disk): the path and cause
    INTERRUPTED = 130  # Ctrl-C / SIGTERM: every kernel stopped, the run marked interrupted
