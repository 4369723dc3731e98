"""What labline says about a run is true: the data set recorded is the one the steps read (run,
sweep, retrain), a retrain that raises before its decision leaves the state as it was, and the
fixes found by reading the code (shadow drops counted under the lock, load_model's device, the
docs' command lines, the registry's error type, data files given with -p refused before a run).

Pipeline runs are few and small (Airbnb, 300 sampled rows, explore -> train_sklearn -> audit)."""

from __future__ import annotations

import json
import re
import shlex
import sqlite3
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from labline.cli import build_parser, main
from tests.fixtures import ROOT

SMALL = ["explore.sample_rows=300", "train_sklearn.cv_folds=2"]
ONLY = "audit_sklearn"


def _params(overrides: list[str]) -> list[str]:
    return [arg for o in overrides for arg in ("-p", o)]


# ---- the data set a run used is the one recorded --------------------------------------------------


@pytest.fixture(scope="module")
def airbnb_run(tmp_path_factory):
    """`labline run --pipeline pipeline_airbnb.yaml --report` without --dataset: (runs folder, db url, manifest)."""
    base = tmp_path_factory.mktemp("airbnb-run")
    runs, db = base / "runs", f"sqlite:///{base / 'registry.db'}"
    argv = ["run", "--pipeline", str(ROOT / "pipeline_airbnb.yaml"), "--only", ONLY, "--runs", str(runs)]
    code = main([*argv, *_params(SMALL), "--db", db, "--workers", "2", "--report"])
    assert code == 0
    (manifest,) = runs.glob("*/manifest.json")
    return runs, db, json.loads(manifest.read_text())


def test_an_airbnb_run_without_dataset_is_recorded_as_airbnb(airbnb_run, capsys):
    from labline.registry import Registry

    runs, db, manifest = airbnb_run
    assert manifest["dataset"] == "airbnb"
    assert manifest["steps"]["explore"]["parameters"]["dataset"] == "airbnb"  # what the step got
    capsys.readouterr()
    assert main(["runs", "--runs", str(runs), "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [row["dataset"] for row in listed] == ["airbnb"]
    versions = Registry(db).versions()
    assert [(v.step, v.dataset, v.scope) for v in versions] == [("train_sklearn", "airbnb", "airbnb")]
    page = (runs / manifest["run_id"] / "report.html").read_text()
    assert re.search(r"dataset</[^>]+>\s*<[^>]+>airbnb<", page), "the report's facts name the data set"


def test_a_sweep_records_the_data_set_its_steps_got(airbnb_run, capsys):
    runs, _, first = airbnb_run
    argv = ["sweep", "train_sklearn", "-p", "cv_folds=2,3", "--pipeline", str(ROOT / "pipeline_airbnb.yaml")]
    code = main([*argv, "--set", SMALL[0], "--runs", str(runs), "--workers", "2", "--format", "json"])
    assert code == 0
    swept = [m for m in map(json.loads, map(Path.read_text, runs.glob("*/manifest.json"))) if "sweep" in m]
    assert sorted(m["sweep"]["parameters"]["cv_folds"] for m in swept) == [2, 3]
    assert all(m["steps"]["explore"]["cached_from"] == first["run_id"] for m in swept)  # explore read airbnb
    assert [m["dataset"] for m in swept] == ["airbnb", "airbnb"]


# ---- bad data files given with -p are refused before a run starts -----------------------------------


@pytest.mark.parametrize(
    "param",
    [
        "explore.dataset=/missing/listings.csv",
        "dataset=/missing/listings.csv",
        "explore.dataset=airbnb:/missing/listings.csv",
    ],
)
def test_a_missing_data_file_given_with_p_is_refused_before_any_run_folder(tmp_path, capsys, param):
    runs = tmp_path / "runs"
    code = main(["run", "-p", param, "-p", "target=price", "--runs", str(runs), "--no-register"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "/missing/listings.csv" in err
    assert not runs.exists() or not [p for p in runs.iterdir() if p.is_dir()]  # no run folder


def test_a_sweep_refuses_a_missing_data_file_given_with_set(tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["sweep", "train_sklearn", "-p", "cv_folds=2,3", "--set", "explore.dataset=/missing/listings.csv"]
    code = main([*argv, "--set", "target=price", "--runs", str(runs)])
    assert code == 2 and "/missing/listings.csv" in capsys.readouterr().err
    assert not runs.exists() or not [p for p in runs.iterdir() if p.is_dir()]  # no run folder


# ---- retrain: all or nothing ---------------------------------------------------------------------


def _state_snapshot(state: Path, db: str) -> dict[str, bytes | list]:
    """Every state file's bytes (the lock's holder line aside) and every registry row."""
    files = {str(p.relative_to(state)): p.read_bytes() for p in sorted(state.rglob("*")) if p.is_file()}
    files.pop("retrain.lock", None)
    with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        rows = {t: conn.execute(f"SELECT * FROM {t}").fetchall() for t in tables}
    return {"files": files, "rows": rows}


def test_a_retrain_whose_holdout_step_raises_leaves_the_state_as_it_was(tmp_path):
    from labline.data.batches import write_batches
    from labline.data.datasets import read_table
    from labline.registry import Registry
    from labline.retrain import RetrainError, retrain

    raw = read_table(ROOT / "data" / "nyc_airbnb_2019_sample.csv.gz")
    batches = {p.stem: p for p in write_batches(raw, tmp_path / "batches", "last_review", "week", since="2019-06-03")}
    where = dict(registry_url=f"sqlite:///{tmp_path / 'registry.db'}", runs_root=tmp_path / "runs")
    where.update(state_dir=tmp_path / "state", pipeline=ROOT / "pipeline_airbnb.yaml", only=[ONLY], workers=2)
    first = retrain(batches["before-2019-06-03"], "airbnb", overrides=SMALL, **where)
    assert first.status == "promoted", first.summary()
    run = json.loads((tmp_path / "runs" / first.run_id / "manifest.json").read_text())
    assert run["dataset"] == f"airbnb:{first.accumulated}" == run["steps"]["explore"]["parameters"]["dataset"]
    assert Registry(where["registry_url"]).resolve("champion").dataset == run["dataset"]
    pointer = json.loads((tmp_path / "state" / "airbnb-accumulated.json").read_text())
    assert pointer == {"path": first.accumulated, "run_id": first.run_id}

    before = _state_snapshot(tmp_path / "state", where["registry_url"])
    # 100 sampled rows leave 20 held-out rows: fewer than the 30 the fair comparison needs.
    with pytest.raises(RetrainError, match=r"only 1\d held-out rows the champion has not seen; need 30"):
        retrain(batches["2019-06-24"], "airbnb", overrides=["explore.sample_rows=100", SMALL[1]], **where)
    after = _state_snapshot(tmp_path / "state", where["registry_url"])
    new_folders = {Path(name).parts[0] for name in after["files"]} - {Path(name).parts[0] for name in before["files"]}
    (attempt,) = new_folders  # the attempt keeps its own folder, without a decision.json ...
    assert not (tmp_path / "state" / attempt / "decision.json").exists()
    assert {k: v for k, v in after["files"].items() if not k.startswith(attempt)} == before["files"]
    assert after["rows"] == before["rows"]  # ... and nothing else moved: pointer, decisions, registry


def test_a_negative_margin_is_refused_before_anything_runs(tmp_path):
    from labline.registry import GatePolicy, RegistryError
    from labline.retrain import RetrainError, retrain

    with pytest.raises(RegistryError, match="margin must be a number >= 0, got -0.5"):
        GatePolicy("test_mae", margin=-0.5)
    with pytest.raises(RegistryError, match="slice tolerance must be a number >= 0, got nan"):
        GatePolicy("macro_f1", slice_tolerance=float("nan"))
    batch = ROOT / "data" / "nyc_airbnb_2019_sample.csv.gz"
    with pytest.raises(RetrainError, match="margin must be a number >= 0"):
        retrain(batch, "airbnb", state_dir=tmp_path / "state", runs_root=tmp_path / "runs", margin=-1.0)
    assert not (tmp_path / "state").exists() and not (tmp_path / "runs").exists()


# ---- the service and the model artifact -------------------------------------------------------------


@pytest.fixture(scope="module")
def iris_frame() -> pd.DataFrame:
    from labline.data.datasets import load_dataset

    return load_dataset("iris")[0]


def _shadow_setup(tmp_path: Path, iris_frame: pd.DataFrame, max_pending: int):
    """A scorer whose request log refuses every row (closed): each record given to it is dropped."""
    from labline.models.quick_model import train_quick_model
    from labline.serve.deployments import load_deployment
    from labline.serve.request_log import RequestLog
    from labline.serve.scoring import ShadowScorer

    deployment = load_deployment(str(train_quick_model("iris", tmp_path / "model")), folder=True)
    log = RequestLog(tmp_path / "requests.db")
    log.close()
    payload = iris_frame.iloc[0][deployment.model.spec.features].to_dict()
    return ShadowScorer(log, max_pending_records=max_pending), deployment, payload


def test_shadow_drops_are_all_counted_when_many_threads_drop_at_once(tmp_path, iris_frame):
    scorer, deployment, payload = _shadow_setup(tmp_path, iris_frame, max_pending=3)
    threads, per_thread = 16, 300

    def client(n: int) -> None:
        for i in range(per_thread):
            scorer.submit(deployment, [(f"{n}-{i}", f"{n}-{i}", payload, None)])

    clients = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    scorer.close()
    assert scorer.pending == 0
    assert scorer.dropped == threads * per_thread  # dropped at submit (queue full) or by the worker (log refused)


def test_a_shadow_worker_counts_its_drop_only_under_the_scorer_lock(tmp_path, iris_frame):
    """`submit` counts drops under the lock; a worker whose write failed must take the same lock, or
    the two read-modify-writes of `dropped` can interleave and lose counts."""
    scorer, deployment, payload = _shadow_setup(tmp_path, iris_frame, max_pending=100)
    workers = [
        threading.Thread(target=scorer._run, args=(deployment, [(f"r{n}", f"r{n}", payload, None)])) for n in range(8)
    ]
    with scorer._lock:
        scorer.pending = len(workers)  # as submit() would have counted them
        for thread in workers:
            thread.start()
        deadline = time.monotonic() + 3.0  # each worker scores (milliseconds), then fails to log
        while scorer.dropped == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert scorer.dropped == 0, "a worker changed `dropped` while another thread held the lock"
    for thread in workers:
        thread.join()
    assert (scorer.dropped, scorer.pending) == (len(workers), 0)


@pytest.fixture(scope="module")
def torch_artifact(tmp_path_factory, iris_frame) -> Path:
    """A small PyTorch Iris model saved as labline saves one (weights untrained: only placement matters)."""
    from labline.data.iris import SPEC
    from labline.models.artifact import save_torch_model
    from labline.models.preprocess import build_preprocessor
    from labline.models.torch_net import Net

    out = tmp_path_factory.mktemp("torch-model")
    preprocess = build_preprocessor(SPEC).fit(iris_frame[SPEC.features])
    config = {"n_features": len(SPEC.features), "hidden_sizes": [8], "n_outputs": 3}
    save_torch_model(out, Net(**config), preprocess, config, SPEC, ["setosa", "versicolor", "virginica"])
    return out


def test_load_model_places_the_network_on_the_device_asked_for(torch_artifact, iris_frame):
    import torch

    from labline.models.artifact import ArtifactError, load_model

    on_cpu = load_model(torch_artifact, device="cpu")
    assert {p.device.type for p in on_cpu._model.parameters()} == {"cpu"}
    expected = on_cpu.predict_proba(iris_frame)
    for refused in ("meta", "tpu", "not-a-device"):
        with pytest.raises(ArtifactError, match=f"device '{refused}'"):
            load_model(torch_artifact, device=refused)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ArtifactError, match=rf"device 'cuda:{count}' is not available: this machine has {count} CUDA"):
        load_model(torch_artifact, device=f"cuda:{count}")
    if count == 0:
        with pytest.raises(ArtifactError, match="device 'cuda' is not available"):
            load_model(torch_artifact, device="cuda")
    else:  # a GPU machine: the network's weights are on the GPU, and it answers as on the CPU
        on_gpu = load_model(torch_artifact, device="cuda")
        assert {p.device.type for p in on_gpu._model.parameters()} == {"cuda"}
        assert abs(on_gpu.predict_proba(iris_frame) - expected).max() < 1e-5


def test_the_artifact_module_names_no_missing_file():
    import labline.models.artifact as artifact

    named = re.findall(r"\b([A-Za-z_]+\.md)\b", artifact.__doc__)
    assert all((ROOT / name).exists() or any(ROOT.glob(f"*/{name}")) for name in named), named


# ---- the documentation's command lines --------------------------------------------------------------


SHELL_BLOCKS = ("bash", "sh", "shell", "console")
SYNOPSIS = re.compile(r"\s\[(-|[A-Z])")  # `labline run [--force [STEP]]`: a usage line, not a command


def _documented_commands() -> list[tuple[str, str]]:
    """(file:line, command) for every `labline ...` command of a shell block (and every `$ labline ...`
    of a plain block) in README.md and docs/*.md; usage synopses with [OPTIONAL] parts are left out."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        block = None  # the open block's language
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("```"):
                block = line.strip().strip("`").strip() if block is None else None
                continue
            text = line.strip()
            if block is None or SYNOPSIS.search(text) or not (block in SHELL_BLOCKS or text.startswith("$ ")):
                continue
            for part in re.split(r"\s*(?:&&|\|\||;)\s*|\s+\|\s+", text.removeprefix("$ ")):
                if part.startswith("labline "):
                    found.append((f"{path.relative_to(ROOT)}:{number}", part))
    return found


def _argv(command: str) -> list[str]:
    """The arguments of a command line, without its comment and its shell redirections."""
    words = shlex.split(command, comments=True)[1:]
    cut = next((i for i, w in enumerate(words) if re.match(r"\d?[<>]", w)), len(words))
    return words[:cut]


def test_every_documented_command_line_parses(capsys):
    commands = _documented_commands()
    assert len(commands) > 25  # the scan finds the guides' examples
    refused = []
    for where, command in commands:
        try:
            build_parser().parse_args(_argv(command))
        except SystemExit as exc:
            if exc.code:
                refused.append(f"{where}: {command}\n    {capsys.readouterr().err.strip().splitlines()[-1]}")
    assert not refused, "documented commands labline does not accept:\n" + "\n".join(refused)


def test_the_train_parquet_docstring_names_only_real_options(capsys):
    import labline.models.train_parquet as train_parquet

    with pytest.raises(SystemExit):
        train_parquet.main(["--help"])
    options = set(re.findall(r"--[a-z][a-z-]+", capsys.readouterr().out))
    torchrun = {"--standalone", "--nproc_per_node"}
    named = set(re.findall(r"--[a-z][a-z_-]+", train_parquet.__doc__)) - torchrun
    assert named and named <= options, named - options
