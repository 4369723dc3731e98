"""The command line as a user calls it: the happy path's records and every bad input of the issue."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.fixtures import ROOT
from tests.fixtures.cli import run_cli


def test_runs_show_and_compare_read_a_real_run(iris_run):
    env = {"LABLINE_RUNS": str(iris_run.path.parent)}
    listing = run_cli("runs", "--format", "json", env=env)
    assert listing.returncode == 0, listing.stderr
    assert [r["run_id"] for r in json.loads(listing.stdout)] == [iris_run.run_id]

    shown = run_cli("show", iris_run.run_id[:15], env=env)
    assert shown.returncode == 0, shown.stderr
    assert "train_torch" in shown.stdout and "scrap test_accuracy" in shown.stdout

    compared = run_cli("compare", "--format", "json", env=env)
    rows = json.loads(compared.stdout)
    by_model = {r["model_name"]: r for r in rows}
    assert set(by_model) == {"sklearn-logreg", "torch-mlp"}
    glued = iris_run.manifest["steps"]["train_sklearn"]["scraps"]
    assert by_model["sklearn-logreg"]["test_accuracy"] == glued["test_accuracy"]
    assert by_model["sklearn-logreg"]["cv_score"] == glued["cv_score"]
    csv_out = run_cli("compare", iris_run.run_id, "--format", "csv", env=env).stdout.splitlines()
    assert csv_out[0].startswith("run_id,step,model_name,test_accuracy,macro_f1")


def test_params_lists_typed_declarations():
    result = run_cli("params", "notebooks/train_torch.ipynb")
    assert result.returncode == 0
    assert "hidden_sizes: list[int] = [16]" in result.stdout
    assert "epochs: int = 200" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["-p", "train_torch.epoch=3"], "unknown parameter(s) ['epoch']"),
        (["-p", "train_torch.epochs=many"], "'many' does not fit the declared type int"),
        (["-p", "nosuchstep.x=1"], "no step 'nosuchstep'"),
        (["--dataset", "missing.csv", "--target", "y"], "unknown data set 'missing.csv'"),
        (["--dataset", "data/iris_new.csv"], "needs --target COLUMN"),
        (["--dataset", "data/iris_new.csv", "--target", "species"], "target column 'species' is not in"),
        (["--dataset", "README.md", "--target", "x"], "expected a .csv, .csv.gz or .parquet file"),
    ],
)
def test_bad_input_exits_2_before_any_run_folder(tmp_path, args, message):
    result = run_cli("run", *args, env={"LABLINE_RUNS": str(tmp_path / "runs")})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_unknown_parameter_lists_the_declared_ones(tmp_path):
    result = run_cli("run", "-p", "train_sklearn.estimater=knn", env={"LABLINE_RUNS": str(tmp_path)})
    assert result.returncode == 2
    assert "estimator: str = 'logreg'" in result.stderr and "cv_folds: int = 5" in result.stderr


def test_failing_step_names_cell_line_and_notebook_and_skips_downstream(tmp_path):
    runs = tmp_path / "runs"
    result = run_cli(
        "run", "--only", "audit_sklearn", "-p", "train_sklearn.estimator=nope", env={"LABLINE_RUNS": str(runs)}
    )
    assert result.returncode == 1, result.stderr
    assert "step 'train_sklearn' failed at cell" in result.stderr
    assert "ValueError: unknown estimator 'nope'" in result.stderr
    assert "pipeline = build_training_pipeline(spec, estimator, seed)" in result.stderr
    manifest = json.loads(next(runs.glob("*/manifest.json")).read_text())
    steps = manifest["steps"]
    assert manifest["status"] == "failed"
    assert steps["explore"]["status"] == "succeeded"
    assert steps["train_sklearn"]["status"] == "failed"
    assert steps["audit_sklearn"]["status"] == "skipped"
    partial = Path(steps["train_sklearn"]["output_notebook"])
    assert str(partial) in result.stderr
    nb = nbformat.read(partial, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors and errors[0]["ename"] == "ValueError"
    assert steps["train_sklearn"]["scraps"] == {}  # failed before its first glue


def test_plain_papermill_runs_a_notebook_with_nothing_else(tmp_path):
    out = tmp_path / "out.ipynb"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "papermill"),
            str(ROOT / "notebooks" / "train_torch.ipynb"),
            str(out),
            "-p",
            "epochs",
            "50",
            "-p",
            "output_dir",
            str(tmp_path / "torch"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    import scrapbook as sb

    scraps = sb.read_notebook(str(out)).scraps
    assert scraps["epochs"].data == 50
    assert scraps["test_accuracy"].data >= 0.9
    assert (tmp_path / "torch" / "model" / "manifest.json").exists()


def test_command_line_starts_without_the_heavy_libraries():
    """`labline --help` and no-change reruns stay fast: nothing imports ML libraries at start."""
    code = (
        "import sys, labline.cli; labline.cli.build_parser(); "
        "print(sorted(m for m in ('pandas', 'sklearn', 'torch', 'sqlalchemy', 'scipy', 'fastapi') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
    from labline.commands.data_batches import PERIOD_NAMES
    from labline.data.batches import PERIODS

    assert set(PERIOD_NAMES) == set(PERIODS)


def test_run_registers_its_trained_models(tmp_path):
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    result = run_cli(
        "run",
        "--only",
        "train_sklearn",
        "-p",
        "train_sklearn.cv_folds=2",
        "--db",
        db,
        env={"LABLINE_RUNS": str(tmp_path / "runs")},
    )
    assert result.returncode == 0, result.stderr
    from labline.registry import Registry

    versions = Registry(db).versions()
    assert [v.step for v in versions] == ["train_sklearn"]
    run_id = json.loads(next((tmp_path / "runs").glob("*/manifest.json")).read_text())["run_id"]
    assert versions[0].run_id == run_id and f"as version {versions[0].version}" in result.stderr


def _options(parser, found: dict[str, set[str]]) -> dict[str, set[str]]:
    """Help texts of --db, --runs and --format across every (sub)command of `parser`."""
    import argparse

    for action in parser._actions:
        for flag in ("--db", "--runs", "--format"):
            if flag in action.option_strings:
                found.setdefault(flag, set()).add(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _options(sub, found)
    return found


def test_shared_options_have_one_definition_and_one_help_text():
    from labline.cli import build_parser

    found = _options(build_parser(), {})
    assert set(found) == {"--db", "--runs", "--format"}
    assert {flag: len(helps) for flag, helps in found.items()} == {"--db": 1, "--runs": 1, "--format": 1}, found


def test_a_command_error_under_python_m_labline_cli_is_a_clean_usage_error(tmp_path):
    """The CommandError a subcommand raises is the one main() catches (no traceback), exit 2."""
    result = run_cli("retrain", "--data", str(tmp_path / "missing.csv"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("labline retrain: --data ") and "no such file" in result.stderr
    assert "Traceback" not in result.stderr
