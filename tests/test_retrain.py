"""Retraining on NYC Airbnb batches: the first retrain makes a champion, a clean batch retrains
and promotes only when the challenger beats the champion on the same held-out rows, a second
retrain started meanwhile is locked out, and a batch with out-of-bounds rows stops at validation.
Small data (sampled accumulated rows) and the explore -> train_sklearn -> audit steps only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from labline.data.batches import write_batches
from labline.data.datasets import read_table
from labline.data.perturb import perturb
from labline.registry import Registry
from labline.retrain import RetrainLocked, retrain, retrain_lock

ROOT = Path(__file__).resolve().parents[1]
FAST = ["train_sklearn.cv_folds=2"]
ONLY = ["audit_sklearn"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("retrain")
    raw = read_table(ROOT / "data" / "nyc_airbnb_2019_sample.csv.gz")
    paths = {p.stem: p for p in write_batches(raw, base / "batches", "last_review", "week", since="2019-06-03")}
    env = {"db": f"sqlite:///{base / 'registry.db'}", "runs": base / "runs", "state": base / "state"}
    first = retrain(
        paths["before-2019-06-03"],
        "airbnb",
        pipeline=ROOT / "pipeline_airbnb.yaml",
        registry_url=env["db"],
        runs_root=env["runs"],
        state_dir=env["state"],
        overrides=[*FAST, "explore.sample_rows=300"],
        only=ONLY,
        workers=1,
    )
    return base, paths, env, first


def _cli(env, *args):
    return [
        sys.executable,
        "-m",
        "labline.cli",
        "retrain",
        "--db",
        env["db"],
        "--runs",
        str(env["runs"]),
        "--state",
        str(env["state"]),
        "--only",
        ONLY[0],
        "--workers",
        "1",
        *args,
    ]


def test_first_retrain_without_a_champion_promotes(setup):
    _, _, env, first = setup
    assert first.status == "promoted", first.summary()
    champion = Registry(env["db"]).resolve("champion")
    assert champion.label == first.challenger and champion.run_id == first.run_id
    assert first.reasons and all(r["passed"] for r in first.reasons)


def test_clean_batch_promotes_when_better_and_a_concurrent_retrain_is_locked_out(setup):
    base, paths, env, first = setup
    before = Registry(env["db"]).resolve("champion")
    args = ["--data", str(paths["2019-06-24"]), *sum((["-p", p] for p in [*FAST, "explore.sample_rows=1500"]), [])]
    # This process holds the retrain lock exactly as a running retrain does, for as long as the
    # second retrain needs to find it: a real retrain in the background could finish before the
    # second process has started, and the test would then race.
    with retrain_lock(env["state"]):
        second = subprocess.run(_cli(env, *args), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert second.returncode == 6, second.stderr  # ExitCode.LOCKED
    assert "another retrain is running" in second.stderr and f"pid {os.getpid()}" in second.stderr
    running = subprocess.run(_cli(env, *args), cwd=ROOT, capture_output=True, text=True, timeout=900)
    out, err = running.stdout, running.stderr
    assert running.returncode == 0, out + err

    decision = json.loads((env["state"] / "decisions.jsonl").read_text().splitlines()[-1])
    assert decision["run_id"] and decision["champion"] == before.label
    metrics = decision["holdout_metrics"]
    challenger, champion = metrics[decision["challenger"]], metrics[f"champion {before.label}"]
    better = challenger["test_mae"] < champion["test_mae"]
    assert decision["status"] == ("promoted" if better and all(r["passed"] for r in decision["reasons"]) else "kept")
    # 1,500 accumulated rows against a champion trained on 300: the challenger is better here.
    assert better and decision["status"] == "promoted", decision
    after = Registry(env["db"]).resolve("champion")
    assert after.label == decision["challenger"] and after.version != before.version
    recorded = Registry(env["db"]).decisions()[0]  # newest first: the registry's own history has it too
    assert recorded.version == after.version and recorded.previous == before.version and recorded.promoted
    history, week = read_table(paths["before-2019-06-03"]), read_table(paths["2019-06-24"])
    assert decision["accumulated_rows"] == len(pd.concat([history, week]).drop_duplicates())
    assert "retrain promoted" in out and decision["challenger"] in out
    umask = os.umask(0)
    os.umask(umask)
    for state_file in env["state"].glob("airbnb-*"):  # the pointer: shared like every other state file
        assert state_file.stat().st_mode & 0o777 == 0o666 & ~umask, state_file


def test_batch_with_out_of_bounds_rows_stops_at_validation(setup, tmp_path):
    base, paths, env, _ = setup
    bad = tmp_path / "bad.csv"
    perturb(read_table(paths["2019-06-17"]), ["longitude=set:-75.3@0.05"], seed=3).to_csv(bad, index=False)
    runs_before = sorted(p.name for p in env["runs"].iterdir())
    champion_before = Registry(env["db"]).resolve("champion").version
    outcome = retrain(
        bad,
        "airbnb",
        pipeline=ROOT / "pipeline_airbnb.yaml",
        registry_url=env["db"],
        runs_root=env["runs"],
        state_dir=env["state"],
        overrides=FAST,
        only=ONLY,
    )
    assert outcome.status == "invalid" and not outcome.run_id
    assert "range longitude" in outcome.reasons[0]["reason"]
    assert "range longitude" in Path(outcome.validation_report).read_text()
    assert sorted(p.name for p in env["runs"].iterdir()) == runs_before  # nothing trained
    assert Registry(env["db"]).resolve("champion").version == champion_before  # nothing promoted
    assert outcome.drift["status"] in ("ok", "drift")  # drift against the champion's rows was measured


def test_lock_is_exclusive_and_released(tmp_path):
    with retrain_lock(tmp_path):
        with pytest.raises(RetrainLocked, match="another retrain is running"):
            with retrain_lock(tmp_path):
                pass
    with retrain_lock(tmp_path):  # released after the block
        pass


def test_the_shared_holdout_leaves_out_rows_the_champion_was_trained_on():
    from labline.data.datasets import load_dataset
    from labline.retrain import _unseen

    frame, spec = load_dataset("airbnb")
    trained_on, holdout = frame.iloc[:100], frame.iloc[50:150]
    assert list(_unseen(holdout, trained_on, spec).index) == list(range(100, 150))
